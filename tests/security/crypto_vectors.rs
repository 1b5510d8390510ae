//! Published test vectors: Wycheproof AES-GCM and HMAC-SHA256, and the HS256
//! example of RFC 7515 appendix A.1. The data sit in `tests/data/` (see its
//! README for provenance); a missing file fails the test.

use mcp_engine::Code;
use mcp_engine::security::test_support::hmac_sha256_matches;
use mcp_engine::security::test_support::open_raw;
use mcp_engine::security::test_support::{
    TokenRules, TokenScratch, jws_signature_valid, verify_token,
};
use mcp_engine::security::{Key, Keyring, RevocationList, b64u};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn wycheproof_aes_256_gcm_with_96_bit_nonces() {
    let data = vectors("aes_gcm_test.json");
    let (mut valid, mut invalid, mut other_sizes) = (0, 0, 0);
    for group in data["testGroups"].as_array().unwrap() {
        for case in group["tests"].as_array().unwrap() {
            let id = &case["tcId"];
            let key = hex(&case["key"]);
            let iv = hex(&case["iv"]);
            let mut sealed = hex(&case["ct"]);
            sealed.extend(hex(&case["tag"]));
            let opened = open_raw(&key, &iv, &hex(&case["aad"]), &sealed);
            if group["keySize"] != 256 || group["ivSize"] != 96 {
                // Other key sizes are not AES-256; other nonce sizes do not
                // exist in our API. Both are refused outright.
                if group["ivSize"] != 96 {
                    assert_eq!(opened, None, "tcId {id}: a non-96-bit nonce was accepted");
                }
                other_sizes += 1;
                continue;
            }
            match case["result"].as_str().unwrap() {
                "valid" => {
                    assert_eq!(opened, Some(hex(&case["msg"])), "tcId {id}");
                    valid += 1;
                }
                _ => {
                    assert_eq!(opened, None, "tcId {id} should be refused");
                    invalid += 1;
                }
            }
        }
    }
    assert_eq!((valid, invalid), (39, 27));
    assert!(other_sizes > 0);
}

#[test]
fn wycheproof_hmac_sha256_full_tags_only() {
    let data = vectors("hmac_sha256_test.json");
    let (mut accepted, mut refused) = (0, 0);
    for group in data["testGroups"].as_array().unwrap() {
        let full_tag = group["tagSize"] == 256;
        for case in group["tests"].as_array().unwrap() {
            let matches =
                hmac_sha256_matches(&hex(&case["key"]), &hex(&case["msg"]), &hex(&case["tag"]));
            let expected = full_tag && case["result"] == "valid";
            assert_eq!(
                matches, expected,
                "tcId {} (tagSize {})",
                case["tcId"], group["tagSize"]
            );
            if matches {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(accepted > 0 && refused > 0);
    eprintln!("HMAC-SHA256: {accepted} accepted, {refused} refused");
}

/// RFC 7515 appendix A.1: the HS256 example and its JWK `k`.
const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7515_A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

#[test]
fn rfc7515_a1_hs256_example_verifies_with_its_key() {
    let key = Key::hs256(&b64u::decode(RFC7515_A1_KEY).unwrap()).unwrap();
    assert!(jws_signature_valid(RFC7515_A1_TOKEN, &key));
    // One flipped signature character, or another key: refused.
    let mut tampered = RFC7515_A1_TOKEN.to_owned();
    tampered.pop();
    tampered.push('Y');
    assert!(!jws_signature_valid(&tampered, &key));
    let other = Key::hs256(&[7; 64]).unwrap();
    assert!(!jws_signature_valid(RFC7515_A1_TOKEN, &other));

    // As an MCP token it is refused: it names no `kid` (and expired in 2011).
    let keyring = Keyring::new().with("a1", key, true).unwrap();
    let error = verify_token(
        RFC7515_A1_TOKEN,
        &TokenRules::new(5, None, None),
        &keyring,
        &RevocationList::default(),
        1_300_000_000 * 1_000_000_000,
        &mut TokenScratch::default(),
    )
    .unwrap_err();
    assert_eq!(error.code(), Code::AuthenticationFailed);
    assert_eq!(error.message(), "kid is missing");
}
