//! Sample envelopes for the benches: realistic sizes, fresh timestamps.
//! Each bench uses some of them.
#![allow(dead_code)]

use mcp_engine::codec::{self, AlignedBytes};
use mcp_engine::{Field, Message, MessageType, RawJson, SecurityLevel, Timestamp};

/// An HS256-sized compact JWS (header.claims.signature).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldi1qd3QtMSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc5NTUwMDAwMCwicm9sZXMiOlsiYWRtaW4iXX0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln";

/// A Standard command of about 400 bytes as JSON.
pub(crate) fn small(now: &Timestamp) -> Message {
    let payload = RawJson::parse(
        r#"{"command":"demo.echo","args":{"text":"hello world","n":42,"tags":["a","b"]}}"#,
    )
    .unwrap();
    message(now, payload)
}

/// A Standard command of about 4 KiB as JSON: a batch of 40 records.
pub(crate) fn large(now: &Timestamp) -> Message {
    let records: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"sample":"genomics-{i:04}","score":{}.{},"ok":{},"labels":["x{i}","y"]}}"#,
                i * 7 % 100,
                i % 10,
                i % 2 == 0
            )
        })
        .collect();
    let payload = RawJson::parse(&format!(
        r#"{{"command":"datasets.ingest","resource":"datasets/genomics-42","args":{{"records":[{}]}}}}"#,
        records.join(",")
    ))
    .unwrap();
    message(now, payload)
}

fn message(now: &Timestamp, payload: RawJson) -> Message {
    let mut m = Message::new(
        "c2f1-0001-7f3a",
        MessageType::Command,
        SecurityLevel::Standard,
        payload,
    );
    m.metadata = Field::Present(RawJson::parse(r#"{"trace_id":"4bf92f3577b34da6"}"#).unwrap());
    m.security.auth_token = Field::Present(TOKEN.to_owned());
    m.security.signature = Field::Null;
    m.security.encryption_info = Field::Null;
    m.timestamp = now.clone();
    m
}

pub(crate) fn json(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::json::encode(message, &mut out);
    out
}

pub(crate) fn binary(message: &Message) -> AlignedBytes {
    let mut out = AlignedBytes::new();
    codec::binary::encode(message, &mut out).unwrap();
    out
}
