//! Every security check between decoding and the handler, through the
//! public API, on a development setup: levels, tokens, signatures,
//! encryption, replay, authorization, key rotation, protected replies.

use std::net::IpAddr;
use std::sync::Arc;

use crate::common::{self, Setup};
use mcp_engine::codec::{self, Decoder, Limits};
use mcp_engine::message::Timestamp;
use mcp_engine::security::test_support::{
    CipherScratch, ReplyProtection, ReplyProtector, open_payload, seal_payload,
};
use mcp_engine::security::test_support::{SignatureScratch, sign_message, verify_signature};
use mcp_engine::security::{
    Admission, Key, KeyUse, Keyring, NonceSequence, NonceSource, SecurityState, Target,
};
use mcp_engine::{Code, Field, Message, MessageType, RawJson, SecurityLevel};

fn setup() -> Setup {
    common::setup(|_| {})
}

const LOCAL: &str = "127.0.0.1";
const SECOND: i128 = 1_000_000_000;

fn now() -> i128 {
    mcp_engine::message::unix_nanos_now()
}

/// A client's message: level, token, then encrypted and signed as the level
/// needs (encrypt, then sign).
fn client_message(
    s: &Setup,
    id: &str,
    level: SecurityLevel,
    token: Option<&str>,
    payload: &str,
    at: i128,
) -> Message {
    let mut message = Message::new(
        id,
        MessageType::Command,
        level,
        RawJson::parse(payload).unwrap(),
    );
    message.timestamp = Timestamp::from_unix_nanos(at);
    if let Some(token) = token {
        message.security.auth_token = Field::Present(token.to_owned());
    }
    if level == SecurityLevel::Critical {
        let plaintext = message.payload.clone();
        let sequence = Arc::new(NonceSequence::new().unwrap());
        seal_payload(
            &mut message,
            &plaintext,
            &s.keyring,
            "dev-enc-1",
            at,
            &mut NonceSource::new(sequence),
            &mut CipherScratch::default(),
        )
        .unwrap();
    }
    if level >= SecurityLevel::High {
        sign_message(
            &mut message,
            &s.keyring,
            "dev-sign-1",
            at,
            &mut SignatureScratch::default(),
        )
        .unwrap();
    }
    message
}

/// Decodes `message` and admits it at `at` from `peer`: the outcome as
/// `(principal, command)` or the refusal's code.
fn admit(
    admission: &mut Admission,
    message: &Message,
    peer: &str,
    at: i128,
) -> Result<(Option<String>, Option<String>), Code> {
    let mut body = Vec::new();
    codec::json::encode(message, &mut body);
    let mut decoder = Decoder::new(Limits::default());
    let view = decoder.decode_json(&body, at).map_err(|e| e.code())?;
    let peer: IpAddr = peer.parse().unwrap();
    let admitted = admission.admit(&view, peer, at).map_err(|e| e.code())?;
    // The engine authorizes against the handler's declared target; these
    // tests use the default one of the command's name.
    if let Some(name) = admitted.name() {
        admitted
            .authorize(Target::of_name(name), peer)
            .map_err(|e| e.code())?;
    }
    Ok((
        admitted.principal().map(str::to_owned),
        admitted.name().map(str::to_owned),
    ))
}

fn admission(s: &Setup) -> Admission {
    Admission::new(Arc::new(
        SecurityState::from_config(&s.config, now()).unwrap(),
    ))
}

#[test]
fn every_level_is_admitted_when_protected_as_it_requires() {
    let s = common::setup(|c| c.security.min_security_level = SecurityLevel::Low);
    let mut admission = admission(&s);
    let t = now();
    let echo = r#"{"command":"demo.echo","args":{"text":"hi"}}"#;
    let low = client_message(&s, "m-low", SecurityLevel::Low, None, echo, t);
    // An unauthenticated Low message has no roles but `anonymous`: denied
    // here, since the dev policy grants nothing to it.
    assert_eq!(
        admit(&mut admission, &low, LOCAL, t),
        Err(Code::AccessDenied)
    );
    for (n, level) in [
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ]
    .into_iter()
    .enumerate()
    {
        let message = client_message(&s, &format!("m-{n}"), level, Some(&s.reader), echo, t);
        assert_eq!(
            admit(&mut admission, &message, LOCAL, t),
            Ok((Some("reader".into()), Some("demo.echo".into()))),
            "{level}"
        );
    }
}

#[test]
fn missing_protections_get_the_codes_of_the_fault_table() {
    let s = setup();
    let mut admission = admission(&s);
    let t = now();
    let echo = r#"{"command":"demo.echo"}"#;
    let cases = [
        (
            "below the minimum",
            client_message(&s, "a", SecurityLevel::Low, Some(&s.admin), echo, t),
            Code::AccessDenied,
        ),
        (
            "no token",
            client_message(&s, "b", SecurityLevel::Standard, None, echo, t),
            Code::AuthenticationFailed,
        ),
        (
            "no signature",
            {
                let mut m = client_message(&s, "c", SecurityLevel::High, Some(&s.admin), echo, t);
                m.security.signature = Field::Absent;
                m
            },
            Code::SignatureInvalid,
        ),
        (
            "not encrypted",
            {
                let mut m =
                    client_message(&s, "d", SecurityLevel::Critical, Some(&s.admin), echo, t);
                m.security.encryption_info = Field::Null;
                m.payload = RawJson::parse(echo).unwrap();
                sign_message(
                    &mut m,
                    &s.keyring,
                    "dev-sign-1",
                    t,
                    &mut SignatureScratch::default(),
                )
                .unwrap();
                m
            },
            Code::EncryptionFailed,
        ),
        (
            "no command",
            client_message(
                &s,
                "e",
                SecurityLevel::Standard,
                Some(&s.admin),
                r#"{"args":1}"#,
                t,
            ),
            Code::ValidationFailed,
        ),
        (
            "command not a string",
            client_message(
                &s,
                "f",
                SecurityLevel::Standard,
                Some(&s.admin),
                r#"{"command":5}"#,
                t,
            ),
            Code::ValidationFailed,
        ),
        (
            "resource not a string",
            client_message(
                &s,
                "g",
                SecurityLevel::Standard,
                Some(&s.admin),
                r#"{"command":"a.b","resource":1}"#,
                t,
            ),
            Code::ValidationFailed,
        ),
        (
            "bad signature on a Standard message",
            {
                let mut m =
                    client_message(&s, "h", SecurityLevel::Standard, Some(&s.admin), echo, t);
                m.security.signature =
                    Field::Present("dev-sign-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
                m
            },
            Code::SignatureInvalid,
        ),
        (
            "unknown signature kid",
            {
                let mut m = client_message(&s, "i", SecurityLevel::High, Some(&s.admin), echo, t);
                let text = m
                    .security
                    .signature
                    .present()
                    .unwrap()
                    .replace("dev-sign-1", "nope");
                m.security.signature = Field::Present(text);
                m
            },
            Code::SignatureInvalid,
        ),
        (
            "signature without kid",
            {
                let mut m = client_message(&s, "j", SecurityLevel::High, Some(&s.admin), echo, t);
                let text = m
                    .security
                    .signature
                    .present()
                    .unwrap()
                    .replace("dev-sign-1:", "");
                m.security.signature = Field::Present(text);
                m
            },
            Code::SignatureInvalid,
        ),
    ];
    for (name, message, code) in cases {
        assert_eq!(
            admit(&mut admission, &message, LOCAL, t),
            Err(code),
            "{name}"
        );
    }
}

#[test]
fn tampering_with_any_field_of_a_signed_envelope_is_caught() {
    let s = setup();
    let mut admission = admission(&s);
    let t = now();
    let original = client_message(
        &s,
        "sig-0",
        SecurityLevel::High,
        Some(&s.admin),
        r#"{"command":"demo.echo","args":[1,2]}"#,
        t,
    );
    let mut with_metadata = original.clone();
    with_metadata.metadata = Field::Present(RawJson::parse(r#"{"trace_id":"abc"}"#).unwrap());
    sign_message(
        &mut with_metadata,
        &s.keyring,
        "dev-sign-1",
        t,
        &mut SignatureScratch::default(),
    )
    .unwrap();

    type Tamper = fn(&mut Message, &Setup);
    let tampers: [(&str, Tamper); 9] = [
        ("id", |m, _| m.id = "sig-1".into()),
        ("type", |m, _| m.kind = MessageType::Event),
        ("timestamp", |m, _| {
            m.timestamp = Timestamp::from_unix_nanos(m.timestamp.unix_nanos() + 1_000_000)
        }),
        ("level", |m, _| {
            m.security.security_level = SecurityLevel::Critical
        }),
        ("token", |m, s| {
            m.security.auth_token = Field::Present(s.reader.clone())
        }),
        ("payload", |m, _| {
            m.payload = RawJson::parse(r#"{"command":"demo.echo","args":[1,3]}"#).unwrap()
        }),
        ("metadata added", |m, _| {
            m.metadata = Field::Present(RawJson::parse(r#"{"trace_id":"x"}"#).unwrap())
        }),
        ("metadata null", |m, _| m.metadata = Field::Null),
        ("version", |m, _| m.version = None),
    ];
    for (field, tamper) in tampers {
        let mut message = original.clone();
        tamper(&mut message, &s);
        let outcome = admit(&mut admission, &message, LOCAL, t);
        // Moving to Critical also removes the plaintext payload's right to
        // be plaintext, but the signature is checked first.
        assert_eq!(outcome, Err(Code::SignatureInvalid), "tampered {field}");
    }
    let mut message = with_metadata.clone();
    message.metadata = Field::Present(RawJson::parse(r#"{"trace_id":"abd"}"#).unwrap());
    assert_eq!(
        admit(&mut admission, &message, LOCAL, t),
        Err(Code::SignatureInvalid),
        "metadata"
    );
    // Untouched, both verify.
    assert!(admit(&mut admission, &original, LOCAL, t).is_ok());
    assert!(
        admit(&mut admission, &with_metadata, LOCAL, t + 1).is_err(),
        "same id again is a replay"
    );
}

#[test]
fn tampered_ciphertext_nonce_key_or_aad_is_refused() {
    let s = setup();
    let mut admission = admission(&s);
    let t = now();
    let sealed = client_message(
        &s,
        "enc-0",
        SecurityLevel::Critical,
        Some(&s.admin),
        r#"{"command":"demo.echo"}"#,
        t,
    );
    // Re-sign after each change, so that only the encryption check can fail.
    let resign = |mut m: Message| {
        sign_message(
            &mut m,
            &s.keyring,
            "dev-sign-1",
            t,
            &mut SignatureScratch::default(),
        )
        .unwrap();
        m
    };
    let mut changed = Vec::new();
    let mut m = sealed.clone();
    let text = m.payload.as_str().trim_matches('"').to_owned();
    let flipped = if text.starts_with('A') {
        text.replacen('A', "B", 1)
    } else {
        format!("A{}", &text[1..])
    };
    m.payload = RawJson::string(&flipped);
    changed.push(("ciphertext", resign(m)));
    let mut m = sealed.clone();
    if let Field::Present(info) = &mut m.security.encryption_info {
        info.nonce = "AAAAAAAAAAAAAAAA".into();
    }
    changed.push(("nonce", resign(m)));
    let mut m = sealed.clone();
    if let Field::Present(info) = &mut m.security.encryption_info {
        info.key_id = "nope".into();
    }
    changed.push(("key_id", resign(m)));
    let mut m = sealed.clone();
    if let Field::Present(info) = &mut m.security.encryption_info {
        info.algorithm = "AES-128-GCM".into();
    }
    changed.push(("algorithm", resign(m)));
    let mut m = sealed.clone();
    m.id = "enc-9".into(); // the AAD
    changed.push(("id under the AAD", resign(m)));
    for (n, (what, mut message)) in changed.into_iter().enumerate() {
        if what != "id under the AAD" {
            message.id = format!("enc-{}", n + 1);
            message = resign(message);
        }
        assert_eq!(
            admit(&mut admission, &message, LOCAL, t),
            Err(Code::EncryptionFailed),
            "{what}"
        );
    }
}

#[test]
fn a_retired_signing_key_verifies_during_the_grace_period_only() {
    let s = common::setup(|c| c.security.key_grace_secs = 600);
    let state = Arc::new(SecurityState::from_config(&s.config, now()).unwrap());
    let mut admission = Admission::new(Arc::clone(&state));
    let t = now();
    // Rotate: the same jwt key, a new signing key; the old one retires.
    let next = Keyring::new()
        .with("dev-jwt-1", Key::hs256(&jwt_secret(&s)).unwrap(), true)
        .unwrap()
        .with("dev-sign-2", Key::signing(&[5; 32]).unwrap(), true)
        .unwrap();
    state.keyring.rotate(next, t).unwrap();
    assert_eq!(
        state.keyring.load().active(KeyUse::Signing).unwrap().0,
        "dev-sign-2"
    );

    let inside = t + 599 * SECOND;
    let message = client_message(
        &s,
        "old-key-1",
        SecurityLevel::High,
        Some(&s.admin),
        r#"{"command":"demo.echo"}"#,
        inside,
    );
    assert!(admit(&mut admission, &message, LOCAL, inside).is_ok());
    let after = t + 601 * SECOND;
    let message = client_message(
        &s,
        "old-key-2",
        SecurityLevel::High,
        Some(&s.admin),
        r#"{"command":"demo.echo"}"#,
        after,
    );
    assert_eq!(
        admit(&mut admission, &message, LOCAL, after),
        Err(Code::SignatureInvalid)
    );
}

fn jwt_secret(s: &Setup) -> Vec<u8> {
    let path = s
        .config
        .security
        .keys
        .iter()
        .find(|k| k.id == "dev-jwt-1")
        .unwrap()
        .file
        .clone();
    mcp_engine::security::b64u::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap()
}

#[test]
fn replays_are_refused_per_principal() {
    let s = setup();
    let mut admission = admission(&s);
    let t = now();
    let echo = r#"{"command":"demo.echo"}"#;
    let first = client_message(&s, "r-1", SecurityLevel::Standard, Some(&s.admin), echo, t);
    assert!(admit(&mut admission, &first, LOCAL, t).is_ok());
    assert_eq!(
        admit(&mut admission, &first, LOCAL, t + SECOND),
        Err(Code::ReplayDetected)
    );
    // A fresh timestamp does not make the id new.
    let later = client_message(
        &s,
        "r-1",
        SecurityLevel::Standard,
        Some(&s.admin),
        echo,
        t + 10 * SECOND,
    );
    assert_eq!(
        admit(&mut admission, &later, LOCAL, t + 10 * SECOND),
        Err(Code::ReplayDetected)
    );
    // Another principal may use the same id.
    let other = client_message(&s, "r-1", SecurityLevel::Standard, Some(&s.reader), echo, t);
    assert!(admit(&mut admission, &other, LOCAL, t).is_ok());
    // Principals taking turns (each message's replay bucket is looked up
    // ahead under the last message's principal): each one's ids stay its own.
    for (message, turn) in [(&first, "admin"), (&other, "reader"), (&first, "admin")] {
        assert_eq!(
            admit(&mut admission, message, LOCAL, t + 2 * SECOND),
            Err(Code::ReplayDetected),
            "{turn}"
        );
    }
    let fresh = client_message(&s, "r-2", SecurityLevel::Standard, Some(&s.reader), echo, t);
    assert!(admit(&mut admission, &fresh, LOCAL, t).is_ok());
}

#[test]
fn roles_rules_and_ip_ranges_decide_access() {
    let s = common::setup(|c| {
        c.authorization.deny_ips = vec!["192.0.2.0/24".parse().unwrap()];
        let reader = c.authorization.roles.get_mut("reader").unwrap();
        reader.allow.push("datasets/*:read".into());
        reader.deny.push("datasets/secret:*".into());
        c.authorization.roles.insert("ops".into(), {
            let mut ops = mcp_engine::config::RoleConfig::allowing(["*:*"]);
            ops.ips = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
            ops
        });
    });
    let mut admission = admission(&s);
    let t = now();
    let ops = mcp_engine::security::issue_token(
        &s.keyring,
        &mcp_engine::security::TokenClaims {
            subject: "olga",
            roles: &["ops"],
            issuer: None,
            audience: None,
            ttl_secs: 60,
        },
        t,
    )
    .unwrap();
    let cases: [(&str, &str, &str, Result<(), Code>); 13] = [
        (&s.reader, r#"{"command":"demo.echo"}"#, LOCAL, Ok(())),
        (&s.reader, r#"{"command":"sys.ping"}"#, LOCAL, Ok(())),
        (&s.reader, r#"{"command":"sys.metrics"}"#, LOCAL, Ok(())),
        (
            &s.reader,
            r#"{"command":"demo.sleep"}"#,
            LOCAL,
            Err(Code::AccessDenied),
        ),
        (
            &s.reader,
            r#"{"command":"auth.renew"}"#,
            LOCAL,
            Err(Code::AccessDenied),
        ),
        (
            &s.reader,
            r#"{"command":"datasets.read","resource":"datasets/genomics-42"}"#,
            LOCAL,
            Ok(()),
        ),
        (
            &s.reader,
            r#"{"command":"datasets.read","resource":"datasets/secret"}"#,
            LOCAL,
            Err(Code::AccessDenied),
        ),
        (
            &s.reader,
            r#"{"command":"datasets.read","resource":"admin/x"}"#,
            LOCAL,
            Err(Code::AccessDenied),
        ),
        (
            &s.admin,
            r#"{"command":"anything.at_all","resource":"anything/x/y"}"#,
            LOCAL,
            Ok(()),
        ),
        (
            &s.admin,
            r#"{"command":"demo.echo"}"#,
            "192.0.2.7",
            Err(Code::AccessDenied),
        ),
        (&ops, r#"{"command":"demo.sleep"}"#, "10.1.2.3", Ok(())),
        (&ops, r#"{"command":"demo.sleep"}"#, "fd12::1", Ok(())),
        (
            &ops,
            r#"{"command":"demo.sleep"}"#,
            LOCAL,
            Err(Code::AccessDenied),
        ),
    ];
    for (n, (token, payload, peer, expected)) in cases.into_iter().enumerate() {
        let message = client_message(
            &s,
            &format!("z-{n}"),
            SecurityLevel::Standard,
            Some(token),
            payload,
            t,
        );
        assert_eq!(
            admit(&mut admission, &message, peer, t).map(|_| ()),
            expected,
            "case {n}: {payload} from {peer}"
        );
    }
}

#[test]
fn revoking_a_cached_token_takes_effect_at_once() {
    let s = setup();
    let state = Arc::new(SecurityState::from_config(&s.config, now()).unwrap());
    let mut admission = Admission::new(Arc::clone(&state));
    let t = now();
    let token = mcp_engine::security::issue_token(
        &s.keyring,
        &mcp_engine::security::TokenClaims {
            subject: "carol",
            roles: &["admin"],
            issuer: None,
            audience: None,
            ttl_secs: 60,
        },
        t,
    )
    .unwrap();
    let message = |id: &str| {
        client_message(
            &s,
            id,
            SecurityLevel::Standard,
            Some(&token),
            r#"{"command":"demo.echo"}"#,
            t,
        )
    };
    assert!(admit(&mut admission, &message("v-1"), LOCAL, t).is_ok());
    assert!(admit(&mut admission, &message("v-2"), LOCAL, t).is_ok());
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&mcp_engine::security::b64u::decode(claims).unwrap()).unwrap();
    state.revocations.revoke(claims["jti"].as_str().unwrap());
    assert_eq!(
        admit(&mut admission, &message("v-3"), LOCAL, t),
        Err(Code::AuthenticationFailed)
    );
    // And expiry is re-checked on a hit.
    assert_eq!(
        admit(
            &mut admission,
            &client_message(
                &s,
                "v-4",
                SecurityLevel::Standard,
                Some(&s.admin),
                r#"{"command":"demo.echo"}"#,
                t
            ),
            LOCAL,
            t
        ),
        Ok((Some("admin".into()), Some("demo.echo".into())))
    );
}

#[test]
fn a_reply_is_encrypted_under_the_request_key_then_signed() {
    let s = setup();
    let state = Arc::new(SecurityState::from_config(&s.config, now()).unwrap());
    let mut protector = ReplyProtector::new(&state);
    let t = now();
    let protection = ReplyProtection {
        signature_key: Some("dev-sign-1".into()),
        encryption_key: Some("dev-enc-1".into()),
    };
    let mut nonces = std::collections::HashSet::new();
    for n in 0..3 {
        let mut reply = Message::new(
            format!("reply-{n}"),
            MessageType::Response,
            SecurityLevel::Critical,
            RawJson::null(),
        );
        reply.timestamp = Timestamp::from_unix_nanos(t);
        protector
            .protect_reply(
                &mut reply,
                RawJson::parse(r#"{"result":{"ok":true}}"#).unwrap(),
                &protection,
                t,
            )
            .unwrap();
        let Field::Present(info) = &reply.security.encryption_info else {
            panic!("not encrypted")
        };
        assert!(nonces.insert(info.nonce.clone()), "nonce repeated");
        // The client checks it with the same functions.
        let mut body = Vec::new();
        codec::json::encode(&reply, &mut body);
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_json(&body, t).unwrap();
        assert_eq!(
            verify_signature(&view, &s.keyring, t, &mut SignatureScratch::default()).unwrap(),
            "dev-sign-1"
        );
        let mut scratch = CipherScratch::default();
        let (plain, key_id) = open_payload(&view, &s.keyring, t, &mut scratch).unwrap();
        assert_eq!(key_id, "dev-enc-1");
        assert_eq!(plain, br#"{"result":{"ok":true}}"#);
    }
}
