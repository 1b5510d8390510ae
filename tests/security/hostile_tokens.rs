//! Hostile auth tokens, each refused with its exact code; and the valid
//! ones they are variations of, accepted.

use mcp_engine::Code;
use mcp_engine::security::test_support::{TokenRules, TokenScratch, verify_token};
use mcp_engine::security::{Key, Keyring, RevocationList, b64u};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

const NOW_SECS: i64 = 1_795_435_200;
const NOW: i128 = NOW_SECS as i128 * 1_000_000_000;
const HS_SECRET: [u8; 32] = [0x42; 32];

struct Fixture {
    keyring: Keyring,
    ed: Ed25519KeyPair,
    other_ed: Ed25519KeyPair,
    rules: TokenRules,
    revoked: RevocationList,
}

fn fixture() -> Fixture {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let other = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let keyring = Keyring::new()
        .with("hs", Key::hs256(&HS_SECRET).unwrap(), true)
        .unwrap()
        .with("ed", Key::ed25519_private(pkcs8.as_ref()).unwrap(), false)
        .unwrap();
    Fixture {
        keyring,
        ed: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        other_ed: Ed25519KeyPair::from_pkcs8(other.as_ref()).unwrap(),
        rules: TokenRules::new(5, Some("mcp"), Some("engine")),
        revoked: RevocationList::new(["revoked-1"]),
    }
}

fn enc(text: &str) -> String {
    b64u::encode(text.as_bytes())
}

fn unsigned(header: &str, claims: &str) -> String {
    format!("{}.{}", enc(header), enc(claims))
}

fn hs256(header: &str, claims: &str) -> String {
    hs256_with(&HS_SECRET, header, claims)
}

fn hs256_with(secret: &[u8], header: &str, claims: &str) -> String {
    let signed = unsigned(header, claims);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        signed.as_bytes(),
    );
    format!("{signed}.{}", b64u::encode(tag.as_ref()))
}

fn eddsa(pair: &Ed25519KeyPair, header: &str, claims: &str) -> String {
    let signed = unsigned(header, claims);
    format!(
        "{signed}.{}",
        b64u::encode(pair.sign(signed.as_bytes()).as_ref())
    )
}

fn claims(extra: &str) -> String {
    format!(
        r#"{{"sub":"alice","roles":["reader"],"iss":"mcp","aud":"engine","iat":{},"exp":{}{extra}}}"#,
        NOW_SECS - 10,
        NOW_SECS + 600
    )
}

const HS: &str = r#"{"alg":"HS256","kid":"hs","typ":"JWT"}"#;
const ED: &str = r#"{"alg":"EdDSA","kid":"ed"}"#;

fn check(f: &Fixture, token: &str) -> Result<(), (Code, String)> {
    verify_token(
        token,
        &f.rules,
        &f.keyring,
        &f.revoked,
        NOW,
        &mut TokenScratch::default(),
    )
    .map(|_| ())
    .map_err(|e| (e.code(), e.message().to_owned()))
}

#[test]
fn valid_tokens_of_both_algorithms_verify() {
    let f = fixture();
    check(&f, &hs256(HS, &claims(""))).unwrap();
    check(&f, &eddsa(&f.ed, ED, &claims(""))).unwrap();
    // An audience list naming us, fractional dates, and leeway on exp.
    let list = format!(
        r#"{{"sub":"a","iss":"mcp","aud":["other","engine"],"exp":{}.5}}"#,
        NOW_SECS - 3
    );
    check(&f, &hs256(HS, &list)).unwrap();
    let verified = verify_token(
        &hs256(HS, &claims(r#","jti":"t-1""#)),
        &f.rules,
        &f.keyring,
        &f.revoked,
        NOW,
        &mut TokenScratch::default(),
    )
    .unwrap();
    assert_eq!(&*verified.subject, "alice");
    assert_eq!(verified.roles.len(), 1);
    assert_eq!(verified.token_id.as_deref(), Some("t-1"));
}

#[test]
fn hostile_tokens_get_their_exact_codes() {
    use Code::{AuthenticationFailed as Auth, TokenExpired as Expired};
    let f = fixture();
    let good = hs256(HS, &claims(""));
    let (good_header, rest) = good.split_once('.').unwrap();
    let (good_claims, good_signature) = rest.split_once('.').unwrap();
    let ed_public = f.ed.public_key().as_ref().to_vec();
    let past = |field: &str, secs: i64| {
        format!(
            r#"{{"sub":"alice","iss":"mcp","aud":"engine","{field}":{secs},"exp":{}}}"#,
            NOW_SECS + 600
        )
    };
    let expired = format!(
        r#"{{"sub":"alice","iss":"mcp","aud":"engine","exp":{}}}"#,
        NOW_SECS - 100
    );

    let cases: Vec<(&str, String, Code)> = vec![
        (
            "alg none",
            format!("{}.", unsigned(r#"{"alg":"none","kid":"hs"}"#, &claims(""))),
            Auth,
        ),
        (
            "alg None",
            format!("{}.", unsigned(r#"{"alg":"None","kid":"hs"}"#, &claims(""))),
            Auth,
        ),
        (
            "alg NONE",
            format!("{}.", unsigned(r#"{"alg":"NONE","kid":"hs"}"#, &claims(""))),
            Auth,
        ),
        (
            "alg nOnE, HMAC-signed",
            hs256(r#"{"alg":"nOnE","kid":"hs"}"#, &claims("")),
            Auth,
        ),
        (
            "alg HS512",
            hs256(r#"{"alg":"HS512","kid":"hs"}"#, &claims("")),
            Auth,
        ),
        (
            "alg hs256 (case)",
            hs256(r#"{"alg":"hs256","kid":"hs"}"#, &claims("")),
            Auth,
        ),
        (
            "alg RS256",
            hs256(r#"{"alg":"RS256","kid":"hs"}"#, &claims("")),
            Auth,
        ),
        ("alg missing", hs256(r#"{"kid":"hs"}"#, &claims("")), Auth),
        (
            "alg not a string",
            hs256(r#"{"alg":1,"kid":"hs"}"#, &claims("")),
            Auth,
        ),
        (
            "HS256 against the Ed25519 kid, public key as secret",
            hs256_with(&ed_public, r#"{"alg":"HS256","kid":"ed"}"#, &claims("")),
            Auth,
        ),
        (
            "EdDSA against the HS256 kid",
            eddsa(&f.ed, r#"{"alg":"EdDSA","kid":"hs"}"#, &claims("")),
            Auth,
        ),
        (
            "unknown kid",
            hs256(r#"{"alg":"HS256","kid":"nope"}"#, &claims("")),
            Auth,
        ),
        (
            "missing kid",
            hs256(r#"{"alg":"HS256"}"#, &claims("")),
            Auth,
        ),
        (
            "kid a number",
            hs256(r#"{"alg":"HS256","kid":7}"#, &claims("")),
            Auth,
        ),
        (
            "typ not JWT",
            hs256(
                r#"{"alg":"HS256","kid":"hs","typ":"JOSE+JSON"}"#,
                &claims(""),
            ),
            Auth,
        ),
        (
            "crit extension",
            hs256(r#"{"alg":"HS256","kid":"hs","crit":["exp"]}"#, &claims("")),
            Auth,
        ),
        (
            "empty crit",
            hs256(r#"{"alg":"HS256","kid":"hs","crit":[]}"#, &claims("")),
            Auth,
        ),
        (
            "b64 false",
            hs256(r#"{"alg":"HS256","kid":"hs","b64":false}"#, &claims("")),
            Auth,
        ),
        ("expired", hs256(HS, &expired), Expired),
        (
            "expired and badly signed",
            hs256_with(&[1; 32], HS, &expired),
            Auth,
        ),
        (
            "expired and wrong iss",
            hs256(HS, &expired.replace("\"mcp\"", "\"evil\"")),
            Auth,
        ),
        (
            "nbf in the future",
            hs256(HS, &past("nbf", NOW_SECS + 100)),
            Auth,
        ),
        (
            "iat in the future",
            hs256(HS, &past("iat", NOW_SECS + 100)),
            Auth,
        ),
        (
            "wrong iss",
            hs256(HS, &claims("").replace("\"mcp\"", "\"evil\"")),
            Auth,
        ),
        (
            "iss missing",
            hs256(HS, &claims("").replace(r#""iss":"mcp","#, "")),
            Auth,
        ),
        (
            "iss a number",
            hs256(HS, &claims("").replace("\"mcp\"", "5")),
            Auth,
        ),
        (
            "wrong aud",
            hs256(HS, &claims("").replace("\"engine\"", "\"other\"")),
            Auth,
        ),
        (
            "aud a number",
            hs256(HS, &claims("").replace("\"engine\"", "7")),
            Auth,
        ),
        (
            "aud list without us",
            hs256(HS, &claims("").replace("\"engine\"", "[\"a\",\"b\"]")),
            Auth,
        ),
        (
            "aud list with a number",
            hs256(HS, &claims("").replace("\"engine\"", "[\"engine\",1]")),
            Auth,
        ),
        (
            "exp a string",
            hs256(
                HS,
                &claims("").replace(
                    &format!("\"exp\":{}", NOW_SECS + 600),
                    &format!("\"exp\":\"{}\"", NOW_SECS + 600),
                ),
            ),
            Auth,
        ),
        (
            "exp missing",
            hs256(
                HS,
                &claims("").replace(&format!(",\"exp\":{}", NOW_SECS + 600), ""),
            ),
            Auth,
        ),
        (
            "exp null",
            hs256(
                HS,
                &claims("").replace(&format!("\"exp\":{}", NOW_SECS + 600), "\"exp\":null"),
            ),
            Auth,
        ),
        ("nbf a string", hs256(HS, &claims(r#","nbf":"now""#)), Auth),
        (
            "roles a string",
            hs256(HS, &claims("").replace(r#"["reader"]"#, r#""admin""#)),
            Auth,
        ),
        (
            "roles holding a number",
            hs256(HS, &claims("").replace(r#"["reader"]"#, r#"["reader",1]"#)),
            Auth,
        ),
        (
            "sub missing",
            hs256(HS, &claims("").replace(r#""sub":"alice","#, "")),
            Auth,
        ),
        (
            "sub empty",
            hs256(HS, &claims("").replace("\"alice\"", "\"\"")),
            Auth,
        ),
        (
            "sub null",
            hs256(HS, &claims("").replace("\"alice\"", "null")),
            Auth,
        ),
        ("sub twice", hs256(HS, &claims(r#","sub":"admin""#)), Auth),
        (
            "revoked jti",
            hs256(HS, &claims(r#","jti":"revoked-1""#)),
            Auth,
        ),
        ("jti a number", hs256(HS, &claims(r#","jti":12"#)), Auth),
        (
            "padded header",
            format!("{good_header}=.{good_claims}.{good_signature}"),
            Auth,
        ),
        ("padded signature", format!("{good}="), Auth),
        (
            "standard base64 characters",
            format!(
                "{good_header}.{}+/.{good_signature}",
                &good_claims[..good_claims.len() - 2]
            ),
            Auth,
        ),
        (
            "whitespace in a segment",
            format!("{good_header}.{good_claims} .{good_signature}"),
            Auth,
        ),
        ("two segments", format!("{good_header}.{good_claims}"), Auth),
        ("four segments", format!("{good}.{good_signature}"), Auth),
        ("one segment", good_header.to_owned(), Auth),
        ("empty token", String::new(), Auth),
        (
            "empty header",
            format!(".{good_claims}.{good_signature}"),
            Auth,
        ),
        (
            "truncated signature",
            good[..good.len() - 4].to_owned(),
            Auth,
        ),
        (
            "empty signature",
            format!("{good_header}.{good_claims}."),
            Auth,
        ),
        (
            "signature of another key",
            hs256_with(&[9; 32], HS, &claims("")),
            Auth,
        ),
        (
            "Ed25519 signature of another key",
            eddsa(&f.other_ed, ED, &claims("")),
            Auth,
        ),
        (
            "claims of another token",
            format!(
                "{good_header}.{}.{good_signature}",
                enc(&claims(r#","roles":["admin"]"#))
            ),
            Auth,
        ),
        ("non-JSON header", hs256("{alg: HS256}", &claims("")), Auth),
        (
            "header an array",
            hs256(r#"["HS256","hs"]"#, &claims("")),
            Auth,
        ),
        ("claims an array", hs256(HS, r#"["alice"]"#), Auth),
        ("claims plain text", hs256(HS, "hello, world"), Auth),
        (
            "claims nested too deep",
            hs256(
                HS,
                &format!(
                    r#"{{"sub":"a","exp":{},"x":{}{}}}"#,
                    NOW_SECS + 60,
                    "[".repeat(20),
                    "]".repeat(20)
                ),
            ),
            Auth,
        ),
        (
            "64 KiB token",
            format!("{good_header}.{}.{good_signature}", "A".repeat(64 * 1024)),
            Auth,
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, token, code) in &cases {
        match check(&f, token) {
            Ok(()) => panic!("{name}: accepted"),
            Err((got, reason)) => assert_eq!(got, *code, "{name}: refused as {got:?} ({reason})"),
        }
    }
    eprintln!("{} hostile tokens refused with their codes", cases.len());
}

#[test]
fn leeway_applies_to_exp_and_nbf() {
    let f = fixture();
    let token = |exp: i64, nbf: i64| {
        hs256(
            HS,
            &format!(r#"{{"sub":"a","iss":"mcp","aud":"engine","exp":{exp},"nbf":{nbf}}}"#),
        )
    };
    check(&f, &token(NOW_SECS - 5, NOW_SECS + 5)).unwrap();
    assert_eq!(
        check(&f, &token(NOW_SECS - 6, NOW_SECS)).unwrap_err().0,
        Code::TokenExpired
    );
    assert_eq!(
        check(&f, &token(NOW_SECS + 60, NOW_SECS + 6))
            .unwrap_err()
            .0,
        Code::AuthenticationFailed
    );
}
