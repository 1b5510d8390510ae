//! Keys loaded from files as the config names them: base64url secrets,
//! Ed25519 PEM (a private key issues and verifies, a public key verifies
//! only), and bad files refused with `configuration_error` naming the key.

use std::path::Path;

use mcp_engine::config::KeyConfig;
use mcp_engine::security::test_support::{TokenRules, TokenScratch, verify_token};
use mcp_engine::security::{
    JwtAlgorithm, Key, KeyUse, Keyring, RevocationList, TokenClaims, b64u, issue_token,
};
use mcp_engine::{Code, Config};

fn key_config(
    id: &str,
    key_use: KeyUse,
    algorithm: Option<JwtAlgorithm>,
    file: &Path,
    active: bool,
) -> KeyConfig {
    let mut key = KeyConfig::new(id, key_use, file);
    key.algorithm = algorithm;
    key.active = active;
    key
}

#[test]
fn ed25519_pem_private_keys_issue_and_public_keys_verify() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let private = dir.path().join("ed.pem");
    let public = dir.path().join("ed.pub.pem");
    std::fs::write(&private, pair.serialize_pem()).unwrap();
    std::fs::write(&public, pair.public_key_pem()).unwrap();

    let mut issuer_config = Config::default().security;
    issuer_config.keys = vec![key_config(
        "ed-1",
        KeyUse::Jwt,
        Some(JwtAlgorithm::EdDsa),
        &private,
        true,
    )];
    let issuer = Keyring::load(&issuer_config).unwrap();
    let now = mcp_engine::message::unix_nanos_now();
    let token = issue_token(
        &issuer,
        &TokenClaims {
            subject: "svc",
            roles: &["admin"],
            issuer: None,
            audience: None,
            ttl_secs: 60,
        },
        now,
    )
    .unwrap();

    let mut verifier_config = Config::default().security;
    verifier_config.keys = vec![key_config(
        "ed-1",
        KeyUse::Jwt,
        Some(JwtAlgorithm::EdDsa),
        &public,
        false,
    )];
    let verifier = Keyring::load(&verifier_config).unwrap();
    assert!(!verifier.get(KeyUse::Jwt, "ed-1", now).unwrap().can_sign());
    let verified = verify_token(
        &token,
        &TokenRules::new(5, None, None),
        &verifier,
        &RevocationList::default(),
        now,
        &mut TokenScratch::default(),
    )
    .unwrap();
    assert_eq!(&*verified.subject, "svc");

    // A public key cannot be the active (issuing) key.
    verifier_config.keys[0].active = true;
    assert!(Keyring::load(&verifier_config).is_err());
}

#[test]
fn bad_key_files_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write("good.key", &format!("{}\n", b64u::encode(&[7; 32])));
    let cases = [
        (
            key_config(
                "short",
                KeyUse::Signing,
                None,
                &write("short.key", &b64u::encode(&[1; 16])),
                false,
            ),
            "at least 32 bytes",
        ),
        (
            key_config(
                "aes16",
                KeyUse::Encryption,
                None,
                &write("aes16.key", &b64u::encode(&[1; 16])),
                false,
            ),
            "exactly 32 bytes",
        ),
        (
            key_config(
                "padded",
                KeyUse::Signing,
                None,
                &write("padded.key", &format!("{}=", b64u::encode(&[1; 32]))),
                false,
            ),
            "base64url",
        ),
        (
            key_config(
                "std64",
                KeyUse::Signing,
                None,
                &write("std64.key", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+"),
                false,
            ),
            "base64url",
        ),
        (
            key_config(
                "missing",
                KeyUse::Jwt,
                Some(JwtAlgorithm::Hs256),
                &dir.path().join("nope.key"),
                false,
            ),
            "cannot read",
        ),
        (
            key_config(
                "edraw",
                KeyUse::Jwt,
                Some(JwtAlgorithm::EdDsa),
                &good,
                false,
            ),
            "must be PEM",
        ),
        (
            key_config(
                "edcert",
                KeyUse::Jwt,
                Some(JwtAlgorithm::EdDsa),
                &write(
                    "cert.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                false,
            ),
            "PRIVATE KEY",
        ),
    ];
    for (key, expected) in cases {
        let error = Key::load(&key).unwrap_err();
        assert_eq!(error.code(), Code::ConfigurationError);
        assert!(
            error.message().contains(&format!("key `{}`", key.id)),
            "{}",
            error.message()
        );
        assert!(
            error.message().contains(expected),
            "{}: {}",
            key.id,
            error.message()
        );
    }
    // The good one loads, and its bytes appear in no message or Debug output.
    let key = Key::load(&key_config("good", KeyUse::Signing, None, &good, true)).unwrap();
    assert!(!format!("{key:?}").contains(&b64u::encode(&[7; 32])));
}
