//! Security steps, each on one message or token: JWT verification cold and
//! from the per-worker cache, envelope signature verification, AES-256-GCM
//! payload opening (256 B and 4 KiB), and authorization against 50 rules.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_engine::codec::{self, Decoder, Limits};
use mcp_engine::config::{AuthorizationConfig, RoleConfig};
use mcp_engine::security::test_support::{CipherScratch, open_payload, seal_payload};
use mcp_engine::security::test_support::{
    Policy, TokenCache, TokenRules, TokenScratch, verify_token,
};
use mcp_engine::security::test_support::{SignatureScratch, sign_message, verify_signature};
use mcp_engine::security::{
    Key, Keyring, NonceSequence, NonceSource, RevocationList, Target, TokenClaims, issue_token,
};
use mcp_engine::{Message, MessageType, RawJson, SecurityLevel, Timestamp};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

mod support;

fn keyrings() -> (Keyring, Keyring) {
    let hs = Keyring::new()
        .with("jwt-1", Key::hs256(&[1; 32]).unwrap(), true)
        .unwrap()
        .with("sig-1", Key::signing(&[2; 32]).unwrap(), true)
        .unwrap()
        .with("enc-1", Key::encryption(&[3; 32]).unwrap(), true)
        .unwrap();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let ed = Keyring::new()
        .with("ed-1", Key::ed25519_private(pkcs8.as_ref()).unwrap(), true)
        .unwrap();
    (hs, ed)
}

fn tokens(c: &mut Criterion) {
    let now = Timestamp::now().unix_nanos();
    let (hs, ed) = keyrings();
    let rules = TokenRules::new(5, None, None);
    let revoked = RevocationList::default();
    let claims = TokenClaims {
        subject: "alice",
        roles: &["reader", "writer"],
        issuer: None,
        audience: None,
        ttl_secs: 3600,
    };
    let mut group = c.benchmark_group("jwt_verify");
    group.throughput(Throughput::Elements(1));
    for (label, keyring) in [("HS256", &hs), ("EdDSA", &ed)] {
        let token = issue_token(keyring, &claims, now).unwrap();
        let mut scratch = TokenScratch::default();
        group.bench_function(BenchmarkId::new("cold", label), |b| {
            b.iter(|| {
                verify_token(
                    black_box(&token),
                    &rules,
                    keyring,
                    &revoked,
                    now,
                    &mut scratch,
                )
                .unwrap();
            })
        });
        let mut cache = TokenCache::new(4096);
        group.bench_function(BenchmarkId::new("cached", label), |b| {
            b.iter(|| {
                black_box(
                    cache
                        .verify(black_box(&token), &rules, keyring, &revoked, now)
                        .unwrap(),
                );
            })
        });
    }
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let now = Timestamp::now();
    let (keyring, _) = keyrings();
    let mut group = c.benchmark_group("signature_verify");
    group.throughput(Throughput::Elements(1));
    for (label, mut message) in [
        ("400B", support::small(&now)),
        ("4KiB", support::large(&now)),
    ] {
        sign_message(
            &mut message,
            &keyring,
            "sig-1",
            now.unix_nanos(),
            &mut SignatureScratch::default(),
        )
        .unwrap();
        let body = support::json(&message);
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_json(&body, now.unix_nanos()).unwrap();
        let mut scratch = SignatureScratch::default();
        group.bench_function(label, |b| {
            b.iter(|| {
                black_box(
                    verify_signature(black_box(&view), &keyring, now.unix_nanos(), &mut scratch)
                        .unwrap(),
                );
            })
        });
    }
    group.finish();
}

fn encryption(c: &mut Criterion) {
    let now = Timestamp::now();
    let (keyring, _) = keyrings();
    let mut nonces = NonceSource::new(Arc::new(NonceSequence::new().unwrap()));
    let mut group = c.benchmark_group("aes_gcm_open");
    group.throughput(Throughput::Elements(1));
    for (label, size) in [("256B", 256), ("4KiB", 4096)] {
        // A JSON string payload of exactly `size` bytes of plaintext.
        let plaintext = RawJson::parse(&format!("\"{}\"", "x".repeat(size - 2))).unwrap();
        let mut message = Message::new(
            "enc-bench",
            MessageType::Command,
            SecurityLevel::Critical,
            RawJson::null(),
        );
        message.timestamp = now.clone();
        seal_payload(
            &mut message,
            &plaintext,
            &keyring,
            "enc-1",
            now.unix_nanos(),
            &mut nonces,
            &mut CipherScratch::default(),
        )
        .unwrap();
        let mut body = Vec::new();
        codec::json::encode(&message, &mut body);
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_json(&body, now.unix_nanos()).unwrap();
        let mut scratch = CipherScratch::default();
        group.bench_function(label, |b| {
            b.iter(|| {
                let (plain, _) =
                    open_payload(black_box(&view), &keyring, now.unix_nanos(), &mut scratch)
                        .unwrap();
                black_box(plain.len());
            })
        });
    }
    group.finish();
}

/// 50 rules over five roles, the principal holding two of them; the match
/// is the last allow of the second role, after every deny is checked.
fn authorization(c: &mut Criterion) {
    let mut roles = BTreeMap::new();
    for r in 0..5 {
        let allow = (0..8).map(|n| format!("service{r}/area{n}/*:read"));
        let deny = (0..2).map(|n| format!("service{r}/secret{n}:*")).collect();
        let mut role = RoleConfig::allowing(allow);
        role.deny = deny;
        roles.insert(format!("role{r}"), role);
    }
    let mut authorization = AuthorizationConfig::default();
    authorization.roles = roles;
    let policy = Policy::from_config(&authorization).unwrap();
    let held = ["role0", "role1"];
    let target = Target {
        resource: "service1/area7/item-42",
        action: "read",
    };
    let peer: IpAddr = "10.1.2.3".parse().unwrap();
    let mut group = c.benchmark_group("authorize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("50_rules", |b| {
        b.iter(|| {
            policy
                .authorize(black_box(&held), black_box(target), peer)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, signatures, encryption, authorization);
criterion_main!(benches);
