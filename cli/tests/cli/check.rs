//! `mcp-engine check` as scripts use it (docs/cli.md): one JSON line on stdout,
//! exit 0 accepted, 1 refused, 2 usage error or unreadable input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mcp_engine::codec::{self, AlignedBytes};
use mcp_engine::{Field, Message, MessageType, RawJson, SecurityLevel};
use serde_json::Value;

fn check(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-engine"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading everything (a too-large body).
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// A fresh Standard command, stamped now.
fn command() -> Message {
    let mut m = Message::new(
        "cli-0001",
        MessageType::Command,
        SecurityLevel::Standard,
        RawJson::parse(r#"{"command":"demo.echo","args":{"text":"hi"}}"#).unwrap(),
    );
    m.security.auth_token = Field::Present("header.claims.signature".into());
    m
}

fn json(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::json::encode(message, &mut out);
    out
}

/// stdout as exactly one JSON line.
fn one_line(output: &Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(stdout.ends_with('\n'), "{stdout:?}");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    serde_json::from_str(stdout.trim_end()).unwrap()
}

fn assert_refused(output: &Output, code: &str) {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = one_line(output);
    let payload = line.as_object().unwrap();
    let mut keys: Vec<_> = payload.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["category", "code", "message", "retryable"]);
    assert_eq!(line["code"], code, "{line}");
}

#[test]
fn an_accepted_message_prints_ok_with_id_type_and_level() {
    let output = check(&[], &json(&command()));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"ok\":true,\"id\":\"cli-0001\",\"type\":\"Command\",\"security_level\":\"Standard\"}\n"
    );
}

#[test]
fn reads_a_file_or_dash_for_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.json");
    std::fs::write(&path, json(&command())).unwrap();
    let output = check(&[path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(one_line(&output)["id"], "cli-0001");
    let output = check(&["-"], &json(&command()));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn a_refused_message_prints_the_error_payload_and_exits_1() {
    let mut message = command();
    message.id = "not an id".into();
    let output = check(&[], &json(&message));
    assert_refused(&output, "validation_failed");
    let line = one_line(&output);
    assert_eq!(line["category"], "protocol");
    assert_eq!(line["retryable"], false);
    assert!(line["message"].as_str().unwrap().contains("`id`"), "{line}");

    message = command();
    message.version = Some("2.0".into());
    assert_refused(&check(&[], &json(&message)), "unsupported_version");
    assert_refused(&check(&[], b"{\"id\":1,\"id\":2}"), "invalid_format");
    assert_refused(&check(&[], b""), "invalid_format");
}

#[test]
fn no_security_checks_without_config_so_any_level_passes() {
    for level in SecurityLevel::ALL {
        let mut message = command();
        message.security = mcp_engine::SecurityMetadata::new(level);
        let output = check(&[], &json(&message));
        assert_eq!(output.status.code(), Some(0), "{level}: {output:?}");
        assert_eq!(one_line(&output)["security_level"], level.as_str());
    }
}

#[test]
fn binary_form_with_the_binary_flag() {
    let mut body = AlignedBytes::new();
    codec::binary::encode(&command(), &mut body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.bin");
    std::fs::write(&path, &body[..]).unwrap();
    let output = check(&["--binary", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(one_line(&output)["type"], "Command");
    // From stdin too, and JSON is not a binary envelope.
    assert_eq!(check(&["--binary"], &body).status.code(), Some(0));
    assert_refused(&check(&["--binary"], &json(&command())), "invalid_format");
}

#[test]
fn an_oversized_body_is_refused_without_reading_it_all() {
    let mut body = json(&command());
    body.resize(4 * 1024 * 1024, b' ');
    assert_refused(&check(&[], &body), "message_too_large");
}

#[test]
fn an_unreadable_file_is_exit_2_with_a_message_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let output = check(&[missing.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.json"));
    // A directory is not a readable message either.
    assert_eq!(
        check(&[dir.path().to_str().unwrap()], b"").status.code(),
        Some(2)
    );
}

#[test]
fn a_usage_error_is_exit_2() {
    let output = check(&["--no-such-flag"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let output = check(&["a.json", "b.json"], b"");
    assert_eq!(output.status.code(), Some(2));
}

/// `message` with its payload replaced by `payload`.
fn with_payload(mut message: Message, kind: MessageType, payload: &str) -> Message {
    message.kind = kind;
    message.payload = RawJson::parse(payload).unwrap();
    message
}

#[test]
fn a_plaintext_payload_of_the_wrong_shape_is_refused_without_config() {
    // What the served engine refuses with validation_failed (docs/protocol.md
    // section 7), plain check refuses too: it can see the payload.
    for payload in [
        r#"{"args":{}}"#,
        r#"{"command":3}"#,
        r#"{"command":""}"#,
        r#"{"command":"demo.echo","resource":7}"#,
        r#""demo.echo""#,
        "[]",
        "null",
    ] {
        let message = with_payload(command(), MessageType::Command, payload);
        let output = check(&[], &json(&message));
        assert_refused(&output, "validation_failed");
        // And in the binary form.
        let mut body = AlignedBytes::new();
        codec::binary::encode(&message, &mut body).unwrap();
        assert_refused(&check(&["--binary"], &body), "validation_failed");
    }
    for payload in [r#"{"data":1}"#, r#"{"event":7}"#, "3"] {
        let message = with_payload(command(), MessageType::Event, payload);
        assert_refused(&check(&[], &json(&message)), "validation_failed");
    }
    // Well-shaped ones pass; a Response or an Error may carry anything.
    for (kind, payload) in [
        (MessageType::Command, r#"{"command":"demo.echo"}"#),
        (
            MessageType::Command,
            r#"{"command":"demo.echo","resource":"r/1"}"#,
        ),
        (MessageType::Event, r#"{"event":"demo.notice","data":[1]}"#),
        (MessageType::Response, "[]"),
        (MessageType::Error, "null"),
    ] {
        let message = with_payload(command(), kind, payload);
        let output = check(&[], &json(&message));
        assert_eq!(output.status.code(), Some(0), "{payload}: {output:?}");
    }
}

#[test]
fn an_encrypted_payload_is_not_judged_without_keys() {
    let mut message = command();
    message.security = mcp_engine::SecurityMetadata::new(SecurityLevel::Critical);
    message.security.auth_token = Field::Present("header.claims.signature".into());
    message.security.signature = Field::Present("k1:c2lnbmF0dXJl".into());
    message.security.encryption_info = Field::Present(mcp_engine::EncryptionInfo {
        algorithm: "AES-256-GCM".into(),
        key_id: "enc-1".into(),
        nonce: "AAAAAAAAAAAAAAAA".into(),
    });
    // Ciphertext: a string, whose shape only a key holder can see.
    message.payload = RawJson::string("c2VhbGVkIGJ5dGVz");
    let output = check(&[], &json(&message));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(one_line(&output)["security_level"], "Critical");
}
