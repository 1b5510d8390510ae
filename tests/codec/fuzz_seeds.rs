//! The fuzz targets' entry points over their seed corpora (fuzz/seeds/):
//! every seed runs, and each target's own checks (round trips in both
//! codecs, chunking-independent framing) hold on it.

use std::fs;
use std::path::PathBuf;

use mcp_engine::codec::{Decoder, Limits};
use mcp_engine::fuzzing::{self, FUZZ_NOW};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus missing at {}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds for {target}");
    files
}

#[test]
fn json_seeds_run_and_the_valid_ones_round_trip() {
    let mut accepted = 0;
    for (name, data) in seeds("parse_json") {
        fuzzing::parse_json(&data);
        let body = data.clone();
        if Decoder::new(Limits::default())
            .decode_json(&body, FUZZ_NOW)
            .is_ok()
        {
            accepted += 1;
        } else {
            assert!(
                [
                    "duplicate_key",
                    "version_2",
                    "unknown_field",
                    "old_timestamp"
                ]
                .iter()
                .any(|n| name.starts_with(n)),
                "seed {name} is refused"
            );
        }
    }
    assert_eq!(
        accepted, 10,
        "every valid JSON seed reaches the accept path"
    );
}

#[test]
fn binary_seeds_run_and_decode() {
    for (name, data) in seeds("parse_binary") {
        fuzzing::parse_binary(&data);
        let mut body = mcp_engine::codec::AlignedBytes::new();
        body.extend_from_slice(&data);
        let outcome = Decoder::new(Limits::default())
            .decode_binary(&body, FUZZ_NOW)
            .map(drop);
        assert!(outcome.is_ok(), "seed {name}: {outcome:?}");
    }
}

#[test]
fn frame_seeds_run() {
    for (_, data) in seeds("frame_decoder") {
        fuzzing::frame_decoder(&data);
    }
}

#[test]
fn token_seeds_run_and_the_valid_ones_verify() {
    use mcp_engine::security::test_support::{TokenRules, TokenScratch, verify_token};
    use mcp_engine::security::{Key, Keyring, RevocationList};
    let mut accepted = 0;
    for (name, data) in seeds("auth_token") {
        fuzzing::auth_token(&data);
        if name == "raw-valid" {
            let token = std::str::from_utf8(&data[1..]).unwrap();
            let keyring = Keyring::new()
                .with("fuzz", Key::hs256(&[0x5a; 32]).unwrap(), true)
                .unwrap();
            verify_token(
                token,
                &TokenRules::new(5, None, None),
                &keyring,
                &RevocationList::default(),
                FUZZ_NOW,
                &mut TokenScratch::default(),
            )
            .unwrap();
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}
