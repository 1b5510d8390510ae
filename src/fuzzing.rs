//! Entry points for the fuzz targets in `fuzz/` (not a public API).
//!
//! Each takes arbitrary bytes, must never panic on them, and checks what must
//! hold for whatever it accepts: a message that decodes re-encodes, in both
//! codecs, to the same message with the same signed form; framing gives the
//! same frames however the bytes are chunked.
#![allow(clippy::panic, missing_docs)]

use simd_json::Tape;

use crate::codec::{self, AlignedBytes, Canonicalizer, Decoder, Limits};
use crate::frame::{FrameDecoder, FrameError};
use crate::json::Parser;
use crate::message::MessageView;
use crate::{Codec, Message};

/// The clock the fuzz targets decode with: 2026-11-23T12:00:00Z, the time in
/// the seed corpus.
pub const FUZZ_NOW: i128 = 1_795_435_200 * 1_000_000_000;

fn signing_input(view: &MessageView<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Canonicalizer::new().write_signing_input(view, &mut out);
    out
}

/// Re-encodes an accepted message in both codecs and checks that each decodes
/// back to the same message and the same signed form.
fn check_round_trips(message: &Message, signed: &[u8]) {
    let mut decoder = Decoder::new(Limits::default());

    let mut json = Vec::new();
    codec::json::encode(message, &mut json);
    match decoder.decode_json(&json, FUZZ_NOW) {
        Ok(again) => {
            assert_eq!(
                &again.to_message(),
                message,
                "JSON round trip changed the message"
            );
            assert_eq!(
                signing_input(&again),
                signed,
                "JSON round trip changed the signed form"
            );
        }
        // Re-encoding may only grow past the size limit (escapes written out).
        Err(e) => assert_eq!(
            e.code(),
            crate::Code::MessageTooLarge,
            "re-encoded JSON refused: {e}"
        ),
    }

    let mut binary = AlignedBytes::new();
    if codec::binary::encode(message, &mut binary).is_ok() {
        match decoder.decode_binary(&binary, FUZZ_NOW) {
            Ok(again) => {
                assert_eq!(
                    &again.to_message(),
                    message,
                    "binary round trip changed the message"
                );
                assert_eq!(
                    signing_input(&again),
                    signed,
                    "binary round trip changed the signed form"
                );
            }
            Err(e) => {
                assert_eq!(
                    e.code(),
                    crate::Code::MessageTooLarge,
                    "binary form refused: {e}"
                )
            }
        }
    }
}

/// Whatever the plain reader reads, the parser must read the same: the
/// reader is a shortcut past the parser, never a second judge.
fn check_plain_reader(data: &[u8]) {
    let mut parser = Parser::new(codec::MAX_DEPTH);
    let mut nodes = Vec::new();
    if parser.read_plain(data, &mut nodes) {
        let mut copy = data.to_vec();
        let mut tape = Tape::null().reset();
        match parser.parse(&mut copy, &mut tape) {
            Ok(()) => assert_eq!(nodes, tape.0, "the plain reader and the parser differ"),
            Err(e) => panic!("the plain reader read what the parser refuses: {e}"),
        }
    }
}

/// Whatever the plain envelope reader makes of a body, the parser's path
/// makes the same: the same message and signed form, or the same error.
fn check_envelope_reader(data: &[u8]) {
    let mut read = Decoder::new(Limits::default());
    let mut parsed = Decoder::new(Limits::default());
    assert_eq!(
        read.decode_json(data, FUZZ_NOW).map(|view| decoded(&view)),
        parsed
            .decode_json_parsed(data, FUZZ_NOW)
            .map(|view| decoded(&view)),
        "the envelope reader and the parser differ"
    );
}

/// All a view holds, owned.
fn decoded(view: &MessageView<'_>) -> (Message, Vec<u8>, i128, Option<String>, bool) {
    (
        view.to_message(),
        signing_input(view),
        view.timestamp_nanos(),
        view.correlation_id().map(str::to_owned),
        view.ack(),
    )
}

/// Fuzz target `parse_json`: one JSON body (also checked against the plain
/// reader and the plain envelope reader).
pub fn parse_json(data: &[u8]) {
    check_plain_reader(data);
    check_envelope_reader(data);
    let body = data.to_vec();
    let mut decoder = Decoder::new(Limits::default());
    if let Ok(view) = decoder.decode_json(&body, FUZZ_NOW) {
        let message = view.to_message();
        let signed = signing_input(&view);
        drop(view);
        check_round_trips(&message, &signed);
    }
}

/// Fuzz target `parse_binary`: one binary body.
pub fn parse_binary(data: &[u8]) {
    let mut body = AlignedBytes::new();
    body.extend_from_slice(data);
    let mut decoder = Decoder::new(Limits::default());
    if let Ok(view) = decoder.decode_binary(&body, FUZZ_NOW) {
        let message = view.to_message();
        let signed = signing_input(&view);
        drop(view);
        check_round_trips(&message, &signed);
    }
}

/// What a frame decoder yields, owned, for comparison.
pub type FrameEvent = Result<(Codec, Vec<u8>), FrameError>;

/// Feeds `stream` to a fresh decoder in pieces of the given sizes (cycled;
/// a size of 0 counts as 1) and collects every event.
pub fn decode_frames(
    stream: &[u8],
    chunk_sizes: &[usize],
    max_message_size: usize,
) -> Vec<FrameEvent> {
    let mut decoder = FrameDecoder::new(max_message_size);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        decoder.push(chunk);
        while let Some(event) = decoder.next_frame() {
            events.push(event.map(|frame| (frame.codec, frame.body.to_vec())));
        }
    }
    events
}

/// Fuzz target `frame_decoder`: the first byte picks a limit, the next eight
/// the chunk sizes, the rest is the stream; chunked decoding must give the
/// same events as decoding the stream whole.
pub fn frame_decoder(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(rest.len().min(8));
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    let max = usize::from(limit) * 4;
    let whole = decode_frames(stream, &[stream.len()], max);
    let chunked = decode_frames(stream, &sizes, max);
    assert_eq!(whole, chunked, "chunking changed the frames");
    let one_by_one = decode_frames(stream, &[1], max);
    assert_eq!(
        whole, one_by_one,
        "byte-at-a-time feeding changed the frames"
    );
}

/// The key the `auth_token` target signs and verifies with.
const FUZZ_TOKEN_SECRET: [u8; 32] = [0x5a; 32];

/// Auth tokens: arbitrary bytes either as a whole token (`data[0]` even), or
/// as a header and claims (split at the first `0xFF`) that are signed with
/// the fixture key, so that claim parsing is reached past the signature.
/// Never panics; an accepted token has a subject and an expiry in the
/// future (within leeway), and verifies again the same from the cache.
pub fn auth_token(data: &[u8]) {
    use crate::security::test_support::{TokenCache, TokenRules, TokenScratch, verify_token};
    use crate::security::{Key, Keyring, RevocationList, b64u};
    let Ok(key) = Key::hs256(&FUZZ_TOKEN_SECRET) else {
        return;
    };
    let Ok(keyring) = Keyring::new().with("fuzz", key, true) else {
        return;
    };
    let token = match data.split_first() {
        None => return,
        Some((first, rest)) if first % 2 == 0 => String::from_utf8_lossy(rest).into_owned(),
        Some((_, rest)) => {
            let at = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
            let (header, claims) = rest.split_at(at);
            let claims = claims.get(1..).unwrap_or_default();
            let mut token = format!("{}.{}", b64u::encode(header), b64u::encode(claims));
            let tag = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &FUZZ_TOKEN_SECRET),
                token.as_bytes(),
            );
            token.push('.');
            token.push_str(&b64u::encode(tag.as_ref()));
            token
        }
    };
    let rules = TokenRules::new(5, None, None);
    let revoked = RevocationList::default();
    let outcome = verify_token(
        &token,
        &rules,
        &keyring,
        &revoked,
        FUZZ_NOW,
        &mut TokenScratch::default(),
    );
    if let Ok(verified) = &outcome {
        assert!(!verified.subject.is_empty(), "accepted a token without sub");
        assert!(
            verified.expires_at.saturating_add(5_000_000_000) >= FUZZ_NOW,
            "accepted an expired token"
        );
    }
    let mut cache = TokenCache::new(4);
    for _ in 0..2 {
        let again = cache.verify(&token, &rules, &keyring, &revoked, FUZZ_NOW);
        assert_eq!(
            again.ok(),
            outcome.as_ref().ok(),
            "the cache changed the outcome"
        );
    }
}
