//! The security commands as scripts use them (docs/cli.md): `dev-config`,
//! `keygen`, `token`, and `check --config [--peer]`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mcp_engine::codec;
use mcp_engine::security::test_support::{TokenRules, TokenScratch, verify_token};
use mcp_engine::security::{Key, Keyring, RevocationList, b64u};
use mcp_engine::{Field, Message, MessageType, RawJson, SecurityLevel};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-engine"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn stdout_line(output: &Output) -> String {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_owned()
}

fn dev_config(dir: &Path) -> Value {
    let out = dir.join("dev");
    let output = run(&["dev-config", "--out", out.to_str().unwrap()], b"");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("credentials.json")).unwrap()).unwrap()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

const NOW: fn() -> i128 = mcp_engine::message::unix_nanos_now;

#[test]
fn dev_config_writes_credentials_of_exactly_the_contract_shape() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dev_config(dir.path());
    assert_eq!(
        keys(&credentials),
        [
            "addr",
            "ca_cert",
            "encryption",
            "jwt",
            "server_name",
            "signing",
            "tls",
            "tokens"
        ]
    );
    assert_eq!(credentials["addr"], "127.0.0.1:7450");
    assert_eq!(credentials["tls"], true);
    assert_eq!(credentials["server_name"], "localhost");
    assert_eq!(keys(&credentials["jwt"]), ["alg", "key", "kid"]);
    assert_eq!(credentials["jwt"]["alg"], "HS256");
    assert_eq!(keys(&credentials["signing"]), ["key", "kid"]);
    assert_eq!(keys(&credentials["encryption"]), ["key", "kid"]);
    assert_eq!(keys(&credentials["tokens"]), ["admin", "reader"]);
    for part in ["jwt", "signing", "encryption"] {
        let key = b64u::decode(credentials[part]["key"].as_str().unwrap()).unwrap();
        assert_eq!(key.len(), 32, "{part}");
    }

    let ca = Path::new(credentials["ca_cert"].as_str().unwrap());
    assert!(ca.is_absolute());
    let dev = ca.parent().unwrap();
    CertificateDer::from_pem_slice(&std::fs::read(ca).unwrap()).unwrap();
    CertificateDer::from_pem_slice(&std::fs::read(dev.join("server.pem")).unwrap()).unwrap();
    PrivateKeyDer::from_pem_slice(&std::fs::read(dev.join("server-key.pem")).unwrap()).unwrap();
    #[cfg(unix)]
    for secret in [
        "server-key.pem",
        "credentials.json",
        "keys/jwt.key",
        "keys/signing.key",
        "keys/encryption.key",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dev.join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others");
    }

    // The tokens verify with the printed key, with their roles.
    let jwt = credentials["jwt"]["key"].as_str().unwrap();
    let keyring = Keyring::new()
        .with(
            credentials["jwt"]["kid"].as_str().unwrap(),
            Key::hs256(&b64u::decode(jwt).unwrap()).unwrap(),
            true,
        )
        .unwrap();
    for role in ["admin", "reader"] {
        let token = credentials["tokens"][role].as_str().unwrap();
        let verified = verify_token(
            token,
            &TokenRules::new(5, None, None),
            &keyring,
            &RevocationList::default(),
            NOW(),
            &mut TokenScratch::default(),
        )
        .unwrap();
        assert_eq!(&*verified.subject, role);
        assert_eq!(
            verified.roles.iter().map(|r| &**r).collect::<Vec<_>>(),
            [role]
        );
    }
}

#[test]
fn keygen_prints_32_fresh_bytes_in_base64url() {
    let first = run(&["keygen"], b"");
    let second = run(&["keygen"], b"");
    assert!(first.status.success());
    let (a, b) = (stdout_line(&first), stdout_line(&second));
    assert_eq!(b64u::decode(&a).unwrap().len(), 32);
    assert_ne!(a, b);
}

#[test]
fn token_prints_a_jwt_signed_with_the_active_key() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dev_config(dir.path());
    let config = dir.path().join("dev/engine.toml");
    let output = run(
        &[
            "token",
            "--config",
            config.to_str().unwrap(),
            "--sub",
            "alice",
            "--roles",
            "a,b",
            "--ttl",
            "60",
        ],
        b"",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = stdout_line(&output);
    let keyring = Keyring::new()
        .with(
            "dev-jwt-1",
            Key::hs256(&b64u::decode(credentials["jwt"]["key"].as_str().unwrap()).unwrap())
                .unwrap(),
            true,
        )
        .unwrap();
    let now = NOW();
    let verified = verify_token(
        &token,
        &TokenRules::new(0, None, None),
        &keyring,
        &RevocationList::default(),
        now,
        &mut TokenScratch::default(),
    )
    .unwrap();
    assert_eq!(&*verified.subject, "alice");
    assert_eq!(verified.roles.len(), 2);
    assert!(verified.expires_at <= now + 61 * 1_000_000_000);
    // A config that cannot be read is a usage error.
    assert_eq!(
        run(
            &["token", "--config", "/nonexistent.toml", "--sub", "a"],
            b""
        )
        .status
        .code(),
        Some(2)
    );
}

fn command(id: &str, name: &str, token: &str) -> Vec<u8> {
    let mut m = Message::new(
        id,
        MessageType::Command,
        SecurityLevel::Standard,
        RawJson::parse(&format!(r#"{{"command":"{name}"}}"#)).unwrap(),
    );
    m.security.auth_token = Field::Present(token.to_owned());
    let mut out = Vec::new();
    codec::json::encode(&m, &mut out);
    out
}

#[test]
fn check_with_config_runs_every_check_up_to_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dev_config(dir.path());
    let config = dir.path().join("dev/engine.toml");
    let config = config.to_str().unwrap();
    let admin = credentials["tokens"]["admin"].as_str().unwrap();
    let reader = credentials["tokens"]["reader"].as_str().unwrap();

    let accepted = run(
        &["check", "--config", config, "-"],
        &command("c-1", "demo.sleep", admin),
    );
    assert_eq!(accepted.status.code(), Some(0));
    let line: Value = serde_json::from_str(&stdout_line(&accepted)).unwrap();
    assert_eq!(line["ok"], true);
    assert_eq!(line["principal"], "admin");
    assert_eq!(line["command"], "demo.sleep");
    assert_eq!(line["security_level"], "Standard");
    // No stream: the id is what the replay check records.
    assert_eq!(line["replay"], Value::Null);

    // A message on a replay stream: the stream and number it would record.
    let mut on_stream: Value = serde_json::from_slice(&command("c-6", "demo.echo", admin)).unwrap();
    on_stream["version"] = "1.1".into();
    on_stream["metadata"] = serde_json::json!({"replay": {"stream": "cli-s1", "seq": 42}});
    let accepted = run(
        &["check", "--config", config, "-"],
        on_stream.to_string().as_bytes(),
    );
    assert_eq!(accepted.status.code(), Some(0));
    let line: Value = serde_json::from_str(&stdout_line(&accepted)).unwrap();
    assert_eq!(
        line["replay"],
        serde_json::json!({"stream": "cli-s1", "seq": 42})
    );

    let cases: [(&[u8], &[&str], &str); 4] = [
        (&command("c-2", "demo.sleep", reader), &[], "access_denied"),
        (
            &command("c-3", "demo.echo", "not.a.token"),
            &[],
            "authentication_failed",
        ),
        (&command("c-4", "demo.echo", admin), &["--peer", "::1"], ""),
        (
            &command("c-5", "demo.echo", reader),
            &["--peer", "10.9.8.7"],
            "",
        ),
    ];
    for (body, extra, code) in cases {
        let mut args = vec!["check", "--config", config];
        args.extend_from_slice(extra);
        let output = run(&args, body);
        let line: Value = serde_json::from_str(&stdout_line(&output)).unwrap();
        if code.is_empty() {
            assert_eq!(output.status.code(), Some(0), "{line}");
        } else {
            assert_eq!(output.status.code(), Some(1));
            assert_eq!(line["code"], code);
            assert_eq!(line["category"], "security");
            // Security refusals say no more than their code.
            assert_eq!(line["message"], code.replace('_', " "));
        }
    }
    // Without --config the same refused token passes: no keys, no token check.
    assert_eq!(
        run(&["check"], &command("c-6", "demo.echo", "not.a.token"))
            .status
            .code(),
        Some(0)
    );
    // A bad config or a bad --peer is a usage error.
    assert_eq!(
        run(&["check", "--config", "/nonexistent.toml"], b"{}")
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["check", "--config", config, "--peer", "localhost"], b"{}")
            .status
            .code(),
        Some(2)
    );
}
