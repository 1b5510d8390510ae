//! Every envelope field broken in every way, each mapped to its exact code
//! (docs/protocol.md sections 3 and 7), through both codecs where the binary form
//! can express the fault.

use mcp_engine::codec::{self, AlignedBytes, Decoder, Limits};
use mcp_engine::{Code, Field, Message};
use serde_json::{Value, json};

/// The receiver's clock: 2026-11-23T12:00:00Z.
const NOW: i128 = 1_795_435_200 * 1_000_000_000;

/// The example envelope of docs/protocol.md section 3.
fn base() -> Value {
    json!({
        "version": "1.0",
        "id": "c2f1-0001",
        "type": "Command",
        "payload": {"command": "echo", "args": {"text": "hi"}},
        "metadata": {"trace_id": "abc"},
        "security": {
            "security_level": "High",
            "encryption_info": null,
            "signature": "s1:Qk9HVVM",
            "auth_token": "eyJhbGciOi"
        },
        "timestamp": "2026-11-23T12:00:00.123Z"
    })
}

/// `base()` changed by `edit`.
fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value = base();
    edit(value.as_object_mut().unwrap());
    serde_json::to_vec(&value).unwrap()
}

fn set(key: &'static str, v: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        m.insert(key.into(), v);
    }
}

fn remove(key: &'static str) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        m.remove(key);
    }
}

fn in_security(
    key: &'static str,
    v: Option<Value>,
) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        let security = m.get_mut("security").unwrap().as_object_mut().unwrap();
        match v {
            Some(v) => security.insert(key.into(), v),
            None => security.remove(key),
        };
    }
}

fn in_metadata(key: &'static str, v: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        m.get_mut("metadata")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.into(), v);
    }
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Replaces the first occurrence of `from` in the serialized base.
fn patched(from: &str, to: &str) -> Vec<u8> {
    let base = serde_json::to_string(&base()).unwrap();
    assert!(base.contains(from), "{from} not in base");
    base.replacen(from, to, 1).into_bytes()
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

fn cases() -> Vec<(&'static str, Vec<u8>, Code, &'static str)> {
    use Code::*;
    let encryption =
        || json!({"algorithm": "AES-256-GCM", "key_id": "k1", "nonce": "AAAAAAAAAAAAAAAA"});
    vec![
        // Size.
        (
            "body one byte over the limit",
            {
                let mut body = serde_json::to_vec(&base()).unwrap();
                body.resize(1024 * 1024 + 1, b' ');
                body
            },
            MessageTooLarge,
            "exceeds max_message_size",
        ),
        // Well-formedness.
        (
            "empty body",
            text(""),
            InvalidFormat,
            "unexpected end of input",
        ),
        (
            "truncated JSON",
            text(r#"{"id":"#),
            InvalidFormat,
            "syntax error",
        ),
        (
            "trailing bytes after the object",
            {
                let mut b = with(|_| {});
                b.extend_from_slice(b" x");
                b
            },
            InvalidFormat,
            "syntax error",
        ),
        (
            "byte order mark",
            {
                let mut b = vec![0xEF, 0xBB, 0xBF];
                b.extend(with(|_| {}));
                b
            },
            InvalidFormat,
            "syntax error",
        ),
        (
            "invalid UTF-8 in a string",
            {
                let mut b = patched("\"hi\"", "\"h__\"");
                let at = find(&b, b"h__").unwrap();
                b[at + 1..at + 3].copy_from_slice(&[0xC0, 0xAF]); // an overlong '/'
                b
            },
            InvalidFormat,
            "invalid UTF-8",
        ),
        (
            "lone surrogate escape",
            patched("\"abc\"", "\"\\ud800\""),
            InvalidFormat,
            "invalid escape",
        ),
        (
            "top level is an array",
            text("[]"),
            InvalidFormat,
            "must be a JSON object",
        ),
        (
            "top level is a string",
            text("\"c2f1-0001\""),
            InvalidFormat,
            "must be a JSON object",
        ),
        (
            "top level is null",
            text("null"),
            InvalidFormat,
            "must be a JSON object",
        ),
        (
            "repeated top-level key",
            patched(
                "\"id\":\"c2f1-0001\"",
                "\"id\":\"c2f1-0001\",\"id\":\"c2f1-0002\"",
            ),
            InvalidFormat,
            "duplicate key \"id\"",
        ),
        (
            "repeated key inside payload",
            patched("\"text\":\"hi\"", "\"text\":\"hi\",\"text\":\"bye\""),
            InvalidFormat,
            "duplicate key \"text\"",
        ),
        (
            "repeated key inside security",
            patched(
                "\"security_level\":\"High\"",
                "\"security_level\":\"High\",\"security_level\":\"Low\"",
            ),
            InvalidFormat,
            "duplicate key \"security_level\"",
        ),
        (
            "repeated key escaped differently",
            patched(
                "\"trace_id\":\"abc\"",
                "\"trace_id\":\"abc\",\"trace\\u005fid\":\"x\"",
            ),
            InvalidFormat,
            "duplicate key \"trace_id\"",
        ),
        (
            "nesting 65 deep",
            with(set("payload", nested(64))),
            InvalidFormat,
            "nesting deeper than 64",
        ),
        // Version, before any field rule.
        (
            "major version 2",
            with(set("version", json!("2.0"))),
            UnsupportedVersion,
            "version 1",
        ),
        (
            "major version 0",
            with(set("version", json!("0.9"))),
            UnsupportedVersion,
            "version 1",
        ),
        (
            "major version 2 wins over a bad id",
            with(|m| {
                m.insert("version".into(), json!("2.1"));
                m.insert("id".into(), json!(""));
            }),
            UnsupportedVersion,
            "version 1",
        ),
        // Field rules.
        (
            "version a number",
            with(set("version", json!(1.0))),
            ValidationFailed,
            "`version` must be a string",
        ),
        (
            "version null",
            with(set("version", Value::Null)),
            ValidationFailed,
            "`version` must be a string",
        ),
        (
            "version not dotted digits",
            with(set("version", json!("v1"))),
            ValidationFailed,
            "`version` must look like",
        ),
        (
            "unknown top-level field",
            with(set("extra", json!(1))),
            ValidationFailed,
            "unknown field \"extra\"",
        ),
        (
            "missing id",
            with(remove("id")),
            ValidationFailed,
            "missing field `id`",
        ),
        (
            "empty id",
            with(set("id", json!(""))),
            ValidationFailed,
            "field `id` must be 1 to 128",
        ),
        (
            "id of 129 bytes",
            with(set("id", json!("x".repeat(129)))),
            ValidationFailed,
            "field `id` must be 1 to 128",
        ),
        (
            "id with a space",
            with(set("id", json!("c2f1 0001"))),
            ValidationFailed,
            "field `id` must be 1 to 128",
        ),
        (
            "id with a non-ASCII letter",
            with(set("id", json!("caf\u{e9}"))),
            ValidationFailed,
            "field `id` must be 1 to 128",
        ),
        (
            "id a number",
            with(set("id", json!(7))),
            ValidationFailed,
            "field `id` must be a string",
        ),
        (
            "missing type",
            with(remove("type")),
            ValidationFailed,
            "missing field `type`",
        ),
        (
            "type in lowercase",
            with(set("type", json!("command"))),
            ValidationFailed,
            "field `type` must be Command",
        ),
        (
            "type a number",
            with(set("type", json!(0))),
            ValidationFailed,
            "field `type` must be a string",
        ),
        (
            "type and type_ together",
            with(set("type_", json!("Command"))),
            ValidationFailed,
            "`type` and `type_` must not both",
        ),
        (
            "type_ alias of an unknown kind",
            with(|m| {
                m.remove("type");
                m.insert("type_".into(), json!("Query"));
            }),
            ValidationFailed,
            "field `type_` must be Command",
        ),
        (
            "missing payload",
            with(remove("payload")),
            ValidationFailed,
            "missing field `payload`",
        ),
        (
            "metadata a string",
            with(set("metadata", json!("trace"))),
            ValidationFailed,
            "`metadata` must be an object or null",
        ),
        (
            "metadata an array",
            with(set("metadata", json!([]))),
            ValidationFailed,
            "`metadata` must be an object or null",
        ),
        (
            "metadata.correlation_id a number",
            with(in_metadata("correlation_id", json!(5))),
            ValidationFailed,
            "`metadata.correlation_id`",
        ),
        (
            "metadata.correlation_id not an id",
            with(in_metadata("correlation_id", json!("a b"))),
            ValidationFailed,
            "`metadata.correlation_id`",
        ),
        (
            "metadata.ack a string",
            with(in_metadata("ack", json!("yes"))),
            ValidationFailed,
            "`metadata.ack`",
        ),
        (
            "missing security",
            with(remove("security")),
            ValidationFailed,
            "missing field `security`",
        ),
        (
            "security a string",
            with(set("security", json!("High"))),
            ValidationFailed,
            "`security` must be an object",
        ),
        (
            "security.security_level missing",
            with(in_security("security_level", None)),
            ValidationFailed,
            "missing field `security.security_level`",
        ),
        (
            "security.security_level unknown",
            with(in_security("security_level", Some(json!("Ultra")))),
            ValidationFailed,
            "`security.security_level` must be",
        ),
        (
            "security.security_level a number",
            with(in_security("security_level", Some(json!(2)))),
            ValidationFailed,
            "`security.security_level` must be",
        ),
        (
            "unknown field in security",
            with(in_security("Signature", Some(json!("s1:x")))),
            ValidationFailed,
            "unknown field \"Signature\" in `security`",
        ),
        (
            "security.signature a number",
            with(in_security("signature", Some(json!(1)))),
            ValidationFailed,
            "`security.signature` must be",
        ),
        (
            "security.auth_token an object",
            with(in_security("auth_token", Some(json!({})))),
            ValidationFailed,
            "`security.auth_token` must be",
        ),
        (
            "security.encryption_info a string",
            with(in_security("encryption_info", Some(json!("AES")))),
            ValidationFailed,
            "`security.encryption_info` must be",
        ),
        (
            "encryption_info without nonce",
            with(in_security(
                "encryption_info",
                Some(json!({"algorithm": "AES-256-GCM", "key_id": "k1"})),
            )),
            ValidationFailed,
            "`security.encryption_info` must be",
        ),
        (
            "encryption_info with an extra member",
            with(in_security(
                "encryption_info",
                Some({
                    let mut e = encryption();
                    e["iv"] = json!("x");
                    e
                }),
            )),
            ValidationFailed,
            "`security.encryption_info` must be",
        ),
        (
            "encryption_info.key_id a number",
            with(in_security(
                "encryption_info",
                Some({
                    let mut e = encryption();
                    e["key_id"] = json!(1);
                    e
                }),
            )),
            ValidationFailed,
            "`security.encryption_info` must be",
        ),
        (
            "missing timestamp",
            with(remove("timestamp")),
            ValidationFailed,
            "missing field `timestamp`",
        ),
        (
            "timestamp a number",
            with(set("timestamp", json!(1795435200))),
            ValidationFailed,
            "`timestamp` must be a string",
        ),
        (
            "timestamp not a date",
            with(set("timestamp", json!("yesterday"))),
            ValidationFailed,
            "RFC 3339",
        ),
        (
            "timestamp with a space for T",
            with(set("timestamp", json!("2026-11-23 12:00:00Z"))),
            ValidationFailed,
            "RFC 3339",
        ),
        (
            "timestamp without an offset",
            with(set("timestamp", json!("2026-11-23T12:00:00"))),
            ValidationFailed,
            "RFC 3339",
        ),
        (
            "timestamp on an impossible day",
            with(set("timestamp", json!("2026-02-30T12:00:00Z"))),
            ValidationFailed,
            "RFC 3339",
        ),
        (
            "timestamp 301 s in the past",
            with(set("timestamp", json!("2026-11-23T11:54:59Z"))),
            ValidationFailed,
            "outside the replay window",
        ),
        (
            "timestamp 301 s in the future",
            with(set("timestamp", json!("2026-11-23T12:05:01Z"))),
            ValidationFailed,
            "outside the replay window",
        ),
        (
            "timestamp in range but a year off",
            with(set("timestamp", json!("2025-11-23T12:00:00Z"))),
            ValidationFailed,
            "outside the replay window",
        ),
    ]
}

#[test]
fn each_malformed_envelope_gets_its_exact_code() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut decoder = Decoder::new(Limits::default());
    for (name, body, expected, reason) in cases {
        let outcome = decoder.decode_json(&body, NOW).map(|v| v.id().to_owned());
        match outcome {
            Err(e) => {
                assert_eq!(e.code(), expected, "{name}: got {e}");
                assert!(
                    e.message().contains(reason),
                    "{name}: refused for another reason: {e}"
                );
            }
            Ok(id) => panic!("{name}: accepted (id {id}), expected {expected}"),
        }
    }
}

#[test]
fn the_base_envelope_and_its_lawful_variants_are_accepted() {
    let lawful: Vec<(&str, Vec<u8>)> = vec![
        ("the protocol's example", with(|_| {})),
        ("no version", with(remove("version"))),
        ("version 1", with(set("version", json!("1")))),
        ("minor version 7", with(set("version", json!("1.7")))),
        (
            "type_ alias",
            with(|m| {
                m.remove("type");
                m.insert("type_".into(), json!("Event"));
            }),
        ),
        ("metadata null", with(set("metadata", Value::Null))),
        ("no metadata", with(remove("metadata"))),
        (
            "correlation id and ack",
            with(|m| {
                m.insert(
                    "metadata".into(),
                    json!({"correlation_id": "x:1", "ack": true, "other": [1]}),
                );
            }),
        ),
        ("payload null", with(set("payload", Value::Null))),
        ("nesting exactly 64 deep", with(set("payload", nested(63)))),
        (
            "only the security level",
            with(set("security", json!({"security_level": "Low"}))),
        ),
        (
            "encryption info",
            with(in_security(
                "encryption_info",
                Some(json!({"nonce": "n", "key_id": "k", "algorithm": "other"})),
            )),
        ),
        (
            "timestamp 300 s in the past",
            with(set("timestamp", json!("2026-11-23T11:55:00Z"))),
        ),
        (
            "timestamp 300 s ahead, with an offset",
            with(set("timestamp", json!("2026-11-23T13:05:00+01:00"))),
        ),
        (
            "timestamp in lowercase",
            with(set("timestamp", json!("2026-11-23t12:00:00.5z"))),
        ),
        ("id of 128 bytes", with(set("id", json!("x".repeat(128))))),
        (
            "whitespace everywhere",
            serde_json::to_vec_pretty(&base()).unwrap(),
        ),
    ];
    let mut decoder = Decoder::new(Limits::default());
    for (name, body) in lawful {
        if let Err(e) = decoder.decode_json(&body, NOW) {
            panic!("{name}: refused with {e}");
        }
    }
}

/// The binary codec holds messages to the same rules: a message that breaks
/// a field rule is refused with the same code when sent in binary.
#[test]
fn the_binary_codec_refuses_the_same_field_faults_with_the_same_codes() {
    let accepted = with(|_| {});
    let mut decoder = Decoder::new(Limits::default());
    let message: Message = {
        let body = accepted.clone();
        decoder.decode_json(&body, NOW).unwrap().to_message()
    };
    type Edit = Box<dyn Fn(&mut Message)>;
    let broken: Vec<(&str, Edit, Code)> = vec![
        (
            "major version 2",
            Box::new(|m| m.version = Some("2.0".into())),
            Code::UnsupportedVersion,
        ),
        (
            "version not dotted digits",
            Box::new(|m| m.version = Some("one".into())),
            Code::ValidationFailed,
        ),
        (
            "empty id",
            Box::new(|m| m.id = String::new()),
            Code::ValidationFailed,
        ),
        (
            "id with a slash",
            Box::new(|m| m.id = "a/b".into()),
            Code::ValidationFailed,
        ),
        (
            "metadata a number",
            Box::new(|m| m.metadata = Field::Present(mcp_engine::RawJson::parse("5").unwrap())),
            Code::ValidationFailed,
        ),
        (
            "correlation id not an id",
            Box::new(|m| {
                m.metadata = Field::Present(
                    mcp_engine::RawJson::parse(r##"{"correlation_id":"#"}"##).unwrap(),
                )
            }),
            Code::ValidationFailed,
        ),
        (
            "timestamp outside the window",
            Box::new(|m| {
                m.timestamp = mcp_engine::Timestamp::parse("2026-11-23T13:00:00Z").unwrap()
            }),
            Code::ValidationFailed,
        ),
        (
            "timestamp not a date",
            Box::new(|m| m.timestamp = mcp_engine::Timestamp::from_unix_nanos(NOW)),
            Code::ValidationFailed,
        ),
    ];
    for (name, edit, expected) in broken {
        let mut m = message.clone();
        edit(&mut m);
        let mut bytes = AlignedBytes::new();
        codec::binary::encode(&m, &mut bytes).unwrap();
        if name == "timestamp not a date" {
            // Not expressible through `Timestamp`: patch the text in place
            // (same length, so the layout holds).
            let at = find(&bytes, m.timestamp.as_str().as_bytes()).unwrap();
            bytes[at + 10] = b' ';
        }
        let outcome = decoder
            .decode_binary(&bytes, NOW)
            .map(|v| v.id().to_owned());
        assert_eq!(outcome.unwrap_err().code(), expected, "{name}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
