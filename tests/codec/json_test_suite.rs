//! JSONTestSuite (tests/data/JSONTestSuite) against the JSON codec.
//!
//! - every `n_` file is refused with `invalid_format`;
//! - every `y_` file parses as JSON, and is then refused as an envelope:
//!   `validation_failed` for objects, `invalid_format` for other top-level
//!   values and for the files with a repeated key (which the protocol
//!   refuses as malformed);
//! - no `i_` file panics; which ones are accepted is printed.

use std::fs;
use std::path::PathBuf;

use mcp_engine::codec::{Decoder, Limits};
use mcp_engine::{Code, RawJson};

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

/// The `y_` files whose objects repeat a key.
const REPEATED_KEYS: [&str; 2] = [
    "y_object_duplicated_key.json",
    "y_object_duplicated_key_and_value.json",
];

fn suite() -> Vec<(String, Vec<u8>)> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/JSONTestSuite/test_parsing");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("test data missing at {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 318, "JSONTestSuite is incomplete");
    files
}

fn decode(bytes: &[u8]) -> Result<(), Code> {
    let body = bytes.to_vec();
    let mut decoder = Decoder::new(Limits::default());
    decoder
        .decode_json(&body, NOW)
        .map(drop)
        .map_err(|e| e.code())
}

#[test]
fn json_test_suite() {
    let (mut n, mut y, mut i_accepted, mut i_refused) = (0, 0, Vec::new(), 0);
    for (name, bytes) in suite() {
        if name.starts_with("n_") {
            assert_eq!(
                decode(&bytes),
                Err(Code::InvalidFormat),
                "{name} must be refused as invalid_format"
            );
            n += 1;
        } else if name.starts_with("y_") {
            let text =
                std::str::from_utf8(&bytes).unwrap_or_else(|_| panic!("{name} is not UTF-8"));
            let parsed = RawJson::parse(text);
            let outcome = decode(&bytes);
            if REPEATED_KEYS.contains(&name.as_str()) {
                assert_eq!(parsed.unwrap_err().code(), Code::InvalidFormat, "{name}");
                assert_eq!(outcome, Err(Code::InvalidFormat), "{name}");
            } else {
                let value = parsed.unwrap_or_else(|e| panic!("{name} must parse as JSON: {e}"));
                let expected = if value.is_object() {
                    Code::ValidationFailed
                } else {
                    Code::InvalidFormat
                };
                assert_eq!(outcome, Err(expected), "{name}");
            }
            y += 1;
        } else if name.starts_with("i_") {
            match decode(&bytes) {
                Ok(()) => i_accepted.push(name),
                Err(_) => i_refused += 1,
            }
        } else {
            panic!("unexpected file {name}");
        }
    }
    // Every i_ document is a bare array or value, never an envelope.
    assert!(
        i_accepted.is_empty(),
        "no i_ file is an envelope: {i_accepted:?}"
    );
    println!(
        "JSONTestSuite: {n} n_ refused as invalid_format, {y} y_ parsed as JSON and refused as envelopes, \
         {i_refused} i_ refused, {} i_ accepted, no panics",
        i_accepted.len()
    );
    assert_eq!((n, y, i_refused), (188, 95, 35));
}

/// The `i_` files as plain JSON (not envelopes): which the parser takes.
#[test]
fn json_test_suite_implementation_defined_cases_parse_or_fail_without_panic() {
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (name, bytes) in suite().into_iter().filter(|(n, _)| n.starts_with("i_")) {
        match std::str::from_utf8(&bytes).ok().map(RawJson::parse) {
            Some(Ok(_)) => accepted.push(name),
            Some(Err(e)) => {
                assert_eq!(e.code(), Code::InvalidFormat, "{name}");
                refused += 1;
            }
            None => refused += 1,
        }
    }
    println!(
        "JSONTestSuite i_ as JSON values: {} accepted {accepted:?}, {refused} refused",
        accepted.len()
    );
    assert_eq!(accepted.len() + refused, 35);
}
