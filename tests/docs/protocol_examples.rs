//! The worked examples of docs/protocol.md are what the engine does: the
//! framed ping decodes, and the example envelope's signed input is the one
//! printed there.

use mcp_engine::MessageType;
use mcp_engine::codec::{Canonicalizer, Codec, Decoder, Limits};
use mcp_engine::frame::FrameDecoder;

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

/// The first fenced block after `<!-- example:NAME -->`.
fn example(name: &str) -> String {
    let doc = include_str!("../../docs/protocol.md");
    let marker = format!("<!-- example:{name} -->");
    let after = &doc[doc.find(&marker).unwrap_or_else(|| panic!("no {marker}")) + marker.len()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn the_framed_ping_decodes_to_a_command() {
    let bytes: Vec<u8> = example("frame")
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert_eq!(bytes.len(), 138);
    let mut frames = FrameDecoder::new(1 << 20);
    frames.push(&bytes);
    let frame = frames.next_frame().unwrap().unwrap();
    assert_eq!(frame.codec, Codec::Json);
    let mut decoder = Decoder::new(Limits::default());
    let view = decoder.decode_json(frame.body, NOW).unwrap();
    assert_eq!(view.kind(), MessageType::Command);
    assert_eq!(
        view.payload().get("command").unwrap().as_str(),
        Some("sys.ping")
    );
}

#[test]
fn the_example_envelope_has_the_documented_signed_input() {
    let body = example("envelope").into_bytes();
    let mut decoder = Decoder::new(Limits::default());
    let view = decoder.decode_json(&body, NOW).unwrap();
    let mut signed = Vec::new();
    Canonicalizer::new().write_signing_input(&view, &mut signed);
    assert_eq!(
        String::from_utf8(signed).unwrap(),
        example("signing-input").trim_end()
    );
}

#[test]
fn the_example_replay_member_names_its_stream_and_number() {
    let metadata = example("replay-metadata");
    let body = format!(
        r#"{{"version":"1.1","id":"m-1","type":"Command","payload":{{"command":"sys.ping"}},"metadata":{},"security":{{"security_level":"Low"}},"timestamp":"2026-11-23T12:00:00Z"}}"#,
        metadata.trim()
    );
    let mut decoder = Decoder::new(Limits::default());
    let view = decoder.decode_json(body.as_bytes(), NOW).unwrap();
    let mark = view.replay().expect("a replay mark");
    assert_eq!((mark.stream, mark.seq), ("Qm9vdHN0cmFwcGVkLXN0cmVhbQ", 42));
}
