//! The binary codec on hostile input: any corruption or truncation of a
//! valid body is refused with a protocol code or decodes as some other valid
//! message; nothing panics. (Validation proves structure, not honesty: that
//! is the signature's job.)

use mcp_engine::codec::{self, AlignedBytes, Decoder, Limits};
use mcp_engine::{Code, Field, Message, MessageType, RawJson, SecurityLevel, Timestamp};

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

fn sample() -> AlignedBytes {
    let mut m = Message::new(
        "c-77",
        MessageType::Command,
        SecurityLevel::High,
        RawJson::parse(r#"{"command":"sys.ping","args":{"n":[1,2,3]}}"#).unwrap(),
    );
    m.metadata = Field::Present(RawJson::parse(r#"{"correlation_id":"x-1","ack":false}"#).unwrap());
    m.security.signature = Field::Present("k1:c2lnbmF0dXJl".into());
    m.security.auth_token = Field::Present("a.b.c".into());
    m.timestamp = Timestamp::from_unix_nanos(NOW);
    let mut out = AlignedBytes::new();
    codec::binary::encode(&m, &mut out).unwrap();
    out
}

const DECODE_CODES: [Code; 4] = [
    Code::InvalidFormat,
    Code::ValidationFailed,
    Code::UnsupportedVersion,
    Code::MessageTooLarge,
];

#[test]
fn every_single_byte_corruption_is_refused_or_decodes_without_panic() {
    let body = sample();
    let mut decoder = Decoder::new(Limits::default());
    let (mut refused, mut decoded) = (0, 0);
    for at in 0..body.len() {
        for value in [0x00, 0x01, 0x7F, 0x80, 0xFF, body[at] ^ 0x20] {
            if value == body[at] {
                continue;
            }
            let mut corrupted = AlignedBytes::new();
            corrupted.extend_from_slice(&body);
            corrupted[at] = value;
            match decoder.decode_binary(&corrupted, NOW) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    assert!(
                        DECODE_CODES.contains(&e.code()),
                        "byte {at} = {value:#x}: {e}"
                    );
                    refused += 1;
                }
            }
        }
    }
    println!(
        "{} byte corruptions: {refused} refused, {decoded} decoded as other valid data",
        refused + decoded
    );
    assert!(refused > 0);
}

#[test]
fn every_truncation_is_refused() {
    let body = sample();
    let mut decoder = Decoder::new(Limits::default());
    for len in 0..body.len() {
        let e = decoder.decode_binary(&body[..len], NOW).unwrap_err();
        assert_eq!(e.code(), Code::InvalidFormat, "truncated to {len}");
    }
}

#[test]
fn an_oversized_binary_body_is_refused_before_validation() {
    let limits = Limits {
        max_message_size: 64,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits);
    let body = sample();
    assert!(body.len() > 64);
    assert_eq!(
        decoder.decode_binary(&body, NOW).unwrap_err().code(),
        Code::MessageTooLarge
    );
}
