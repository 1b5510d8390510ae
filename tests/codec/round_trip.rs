//! Property tests of the codecs and the frame decoder.
//!
//! - A random valid envelope decodes, and re-encodes to the same envelope:
//!   JSON -> model -> JSON, and JSON -> model -> rkyv -> model -> JSON, with
//!   the same model, the same signed form, and the same JSON value as the
//!   original text (checked with serde_json, an independent parser).
//! - Random bytes fed to the frame decoder in random chunks never panic and
//!   give the same events as fed whole; a random stream of frames comes out
//!   exactly as it went in.

use mcp_engine::codec::{self, AlignedBytes, Canonicalizer, Codec, Decoder, Limits};
use mcp_engine::frame::{FrameError, write_frame};
use mcp_engine::fuzzing::decode_frames;
use mcp_engine::{Message, MessageView};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, UtcOffset};

/// The receiver's clock: 2026-11-23T12:00:00Z.
const NOW: i128 = 1_795_435_200 * 1_000_000_000;

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,8}",
        any::<String>(),
        // Characters that need escaping, and ones that sort differently in
        // UTF-16 than in UTF-8.
        prop::collection::vec(
            prop::sample::select(vec![
                '"', '\\', '\n', '\u{0}', '\u{1f}', '/', 'é', '\u{ffff}', '\u{e000}', '😀', 'a'
            ]),
            0..6
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,128}"
}

/// Absent (`None`), null, or a value.
fn arb_nullable<S: Strategy<Value = Value>>(value: S) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![Just(None), Just(Some(Value::Null)), value.prop_map(Some)]
}

fn arb_metadata() -> impl Strategy<Value = Option<Value>> {
    let object = (
        prop::collection::btree_map("[a-z]{1,6}", arb_json(), 0..4),
        arb_nullable(arb_id().prop_map(Value::String)),
        arb_nullable(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(extra, correlation, ack)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            m.remove("ack");
            if let Some(c) = correlation {
                m.insert("correlation_id".into(), c);
            }
            if let Some(a) = ack {
                m.insert("ack".into(), a);
            }
            Value::Object(m)
        });
    arb_nullable(object)
}

/// An RFC 3339 text within the replay window, in any of its lawful forms.
fn arb_timestamp() -> impl Strategy<Value = String> {
    (-299_000i64..299_000, 0u32..10, -1439i32..1440, 0u8..3).prop_map(
        |(delta_ms, digits, offset_minutes, style)| {
            let instant =
                OffsetDateTime::from_unix_timestamp_nanos(NOW + i128::from(delta_ms) * 1_000_000)
                    .unwrap();
            let offset = if style == 2 { offset_minutes } else { 0 };
            let local = instant.to_offset(UtcOffset::from_whole_seconds(offset * 60).unwrap());
            let mut text = format!(
                "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
                local.year(),
                u8::from(local.month()),
                local.day(),
                if style == 1 { 't' } else { 'T' },
                local.hour(),
                local.minute(),
                local.second()
            );
            if digits > 0 {
                let fraction = format!("{:09}", local.nanosecond());
                text.push('.');
                text.push_str(&fraction[..digits as usize]);
            }
            match style {
                0 => text.push('Z'),
                1 => text.push('z'),
                _ => text.push_str(&format!(
                    "{}{:02}:{:02}",
                    if offset < 0 { '-' } else { '+' },
                    offset.abs() / 60,
                    offset.abs() % 60
                )),
            }
            text
        },
    )
}

fn arb_envelope() -> impl Strategy<Value = Value> {
    let encryption = (arb_string(), arb_string(), arb_string())
        .prop_map(|(a, k, n)| json!({"algorithm": a, "key_id": k, "nonce": n}));
    let security = (
        prop::sample::select(vec!["Low", "Standard", "High", "Critical"]),
        arb_nullable(encryption),
        arb_nullable(arb_string().prop_map(Value::String)),
        arb_nullable(arb_string().prop_map(Value::String)),
    )
        .prop_map(|(level, encryption, signature, token)| {
            let mut m = Map::new();
            m.insert("security_level".into(), json!(level));
            for (key, value) in [
                ("encryption_info", encryption),
                ("signature", signature),
                ("auth_token", token),
            ] {
                if let Some(v) = value {
                    m.insert(key.into(), v);
                }
            }
            Value::Object(m)
        });
    (
        prop::option::of(prop::sample::select(vec!["1.0", "1", "1.2"])),
        arb_id(),
        prop::sample::select(vec!["Command", "Response", "Event", "Error"]),
        any::<bool>(),
        arb_json(),
        arb_metadata(),
        security,
        arb_timestamp(),
    )
        .prop_map(
            |(version, id, kind, alias, payload, metadata, security, timestamp)| {
                let mut m = Map::new();
                if let Some(v) = version {
                    m.insert("version".into(), json!(v));
                }
                m.insert("id".into(), json!(id));
                m.insert(if alias { "type_" } else { "type" }.into(), json!(kind));
                m.insert("payload".into(), payload);
                if let Some(meta) = metadata {
                    m.insert("metadata".into(), meta);
                }
                m.insert("security".into(), security);
                m.insert("timestamp".into(), json!(timestamp));
                Value::Object(m)
            },
        )
}

/// JSON equality with numbers compared by value (serde_json tells `1` from
/// `1.0`; JSON does not).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn signed_form(view: &MessageView<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Canonicalizer::new().write_signing_input(view, &mut out);
    out
}

fn decode_json(decoder: &mut Decoder, text: &[u8]) -> (Message, Vec<u8>) {
    let body = text.to_vec();
    let view = decoder
        .decode_json(&body, NOW)
        .unwrap_or_else(|e| panic!("refused {e}: {}", String::from_utf8_lossy(text)));
    (view.to_message(), signed_form(&view))
}

// Case count: proptest's default (256), or PROPTEST_CASES.
proptest! {
    #[test]
    fn json_to_model_to_json_is_unchanged(envelope in arb_envelope(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&envelope) } else { serde_json::to_vec(&envelope) }.unwrap();
        let mut decoder = Decoder::new(Limits::default());
        let (model, signed) = decode_json(&mut decoder, &text);

        let mut again = Vec::new();
        codec::json::encode(&model, &mut again);
        let reread: Value = serde_json::from_slice(&again).unwrap();
        prop_assert!(json_eq(&reread, &envelope), "changed:\n{envelope}\n{reread}");
        let (model_again, signed_again) = decode_json(&mut decoder, &again);
        prop_assert_eq!(&model_again, &model);
        prop_assert_eq!(signed_again, signed);

        // The owned message's signed form is the view's.
        let mut owned_signed = Vec::new();
        Canonicalizer::new().write_message_signing_input(&model, &mut owned_signed).unwrap();
        let (_, view_signed) = decode_json(&mut decoder, &text);
        prop_assert_eq!(owned_signed, view_signed);
    }

    #[test]
    fn json_to_rkyv_to_json_is_unchanged(envelope in arb_envelope()) {
        let text = serde_json::to_vec(&envelope).unwrap();
        let mut decoder = Decoder::new(Limits::default());
        let (model, signed) = decode_json(&mut decoder, &text);

        let mut binary = AlignedBytes::new();
        codec::binary::encode(&model, &mut binary).unwrap();
        let view = decoder.decode_binary(&binary, NOW).unwrap_or_else(|e| panic!("binary refused: {e}"));
        let from_binary = view.to_message();
        prop_assert_eq!(signed_form(&view), signed);
        drop(view);
        prop_assert_eq!(&from_binary, &model);

        let mut json_again = Vec::new();
        codec::json::encode(&from_binary, &mut json_again);
        let reread: Value = serde_json::from_slice(&json_again).unwrap();
        prop_assert!(json_eq(&reread, &envelope), "changed:\n{envelope}\n{reread}");
    }

    #[test]
    fn misaligned_binary_input_decodes_the_same(envelope in arb_envelope(), shift in 1usize..16) {
        let text = serde_json::to_vec(&envelope).unwrap();
        let mut decoder = Decoder::new(Limits::default());
        let (model, _) = decode_json(&mut decoder, &text);
        let mut binary = AlignedBytes::new();
        codec::binary::encode(&model, &mut binary).unwrap();
        let mut shifted = AlignedBytes::new();
        shifted.extend_from_slice(&vec![0; shift]);
        shifted.extend_from_slice(&binary);
        let view = decoder.decode_binary(&shifted[shift..], NOW).unwrap();
        prop_assert_eq!(view.to_message(), model);
    }

    #[test]
    fn random_bytes_in_random_chunks_give_the_same_frames_as_whole(
        stream in prop::collection::vec(any::<u8>(), 0..2048),
        chunks in prop::collection::vec(0usize..300, 1..16),
        max in 0usize..600,
    ) {
        let whole = decode_frames(&stream, &[stream.len()], max);
        prop_assert_eq!(&decode_frames(&stream, &chunks, max), &whole);
        prop_assert_eq!(&decode_frames(&stream, &[1], max), &whole);
    }

    #[test]
    fn a_stream_of_frames_comes_out_as_it_went_in(
        frames in prop::collection::vec((prop::sample::select(vec![b'J', b'R', b'J', b'R', b'?', 0]), prop::collection::vec(any::<u8>(), 0..200)), 0..40),
        chunks in prop::collection::vec(1usize..400, 1..8),
        max in 50usize..250,
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (codec_byte, body) in &frames {
            if *codec_byte == 0 {
                // An empty frame: a zero length, no codec byte.
                stream.extend_from_slice(&[0, 0, 0, 0]);
                expected.push(Err(FrameError::Empty));
                continue;
            }
            let length = body.len() as u32 + 1;
            stream.extend_from_slice(&length.to_be_bytes());
            stream.push(*codec_byte);
            stream.extend_from_slice(body);
            if body.len() > max {
                expected.push(Err(FrameError::TooLarge { length, limit: max as u64 + 1 }));
                break;
            }
            expected.push(match Codec::from_byte(*codec_byte) {
                Some(codec) => Ok((codec, body.clone())),
                None => Err(FrameError::UnknownCodec(*codec_byte)),
            });
        }
        prop_assert_eq!(decode_frames(&stream, &chunks, max), expected);
    }
}

#[test]
fn write_frame_and_the_decoder_agree_on_the_header() {
    let mut stream = Vec::new();
    write_frame(&mut stream, Codec::Binary, b"body").unwrap();
    assert_eq!(&stream[..5], &[0, 0, 0, 5, b'R']);
    assert_eq!(
        decode_frames(&stream, &[2], 64),
        vec![Ok((Codec::Binary, b"body".to_vec()))]
    );
}
