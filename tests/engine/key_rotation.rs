//! Rotation under load: reader threads verify signatures and decrypt
//! payloads made with every published key while another thread rotates the
//! keyring 100 times. No reader may see a torn keyring (an active signing
//! key and an active encryption key of different generations), and nothing
//! valid may be refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mcp_engine::codec::{self, Decoder, Limits};
use mcp_engine::message::Timestamp;
use mcp_engine::security::test_support::{CipherScratch, open_payload, seal_payload};
use mcp_engine::security::test_support::{SignatureScratch, sign_message, verify_signature};
use mcp_engine::security::{Key, KeyUse, Keyring, NonceSequence, NonceSource, SharedKeyring};
use mcp_engine::{Message, MessageType, RawJson, SecurityLevel};

const ROTATIONS: usize = 100;
const READERS: usize = 4;
const NOW: i128 = 1_795_435_200 * 1_000_000_000;

fn generation(n: usize) -> Keyring {
    Keyring::new()
        .with(
            &format!("sig-{n}"),
            Key::signing(&[n as u8; 32]).unwrap(),
            true,
        )
        .unwrap()
        .with(
            &format!("enc-{n}"),
            Key::encryption(&[n as u8; 32]).unwrap(),
            true,
        )
        .unwrap()
}

/// A Critical message sealed and signed with generation `n`'s keys.
fn message_of(n: usize) -> Vec<u8> {
    let keys = generation(n);
    let mut message = Message::new(
        format!("m-{n}"),
        MessageType::Command,
        SecurityLevel::Critical,
        RawJson::null(),
    );
    message.timestamp = Timestamp::from_unix_nanos(NOW);
    let plaintext = RawJson::parse(&format!(r#"{{"command":"demo.echo","args":{n}}}"#)).unwrap();
    let mut nonces = NonceSource::new(Arc::new(NonceSequence::new().unwrap()));
    seal_payload(
        &mut message,
        &plaintext,
        &keys,
        &format!("enc-{n}"),
        NOW,
        &mut nonces,
        &mut CipherScratch::default(),
    )
    .unwrap();
    sign_message(
        &mut message,
        &keys,
        &format!("sig-{n}"),
        NOW,
        &mut SignatureScratch::default(),
    )
    .unwrap();
    let mut body = Vec::new();
    codec::json::encode(&message, &mut body);
    body
}

fn generation_of(id: &str) -> usize {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[test]
fn readers_never_see_a_torn_keyring_and_nothing_valid_is_refused() {
    let shared = Arc::new(SharedKeyring::new(generation(0), 3600));
    let messages: Arc<Vec<Vec<u8>>> = Arc::new((0..=ROTATIONS).map(message_of).collect());
    let published = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|seed| {
            let (shared, messages, published, done) = (
                Arc::clone(&shared),
                Arc::clone(&messages),
                Arc::clone(&published),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                let mut decoder = Decoder::new(Limits::default());
                let mut signatures = SignatureScratch::default();
                let mut cipher = CipherScratch::default();
                let mut checked = 0usize;
                let mut pick = seed as u64 + 1;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let newest = published.load(Ordering::Acquire);
                    let keyring = shared.load();
                    let sig = generation_of(keyring.active(KeyUse::Signing).unwrap().0);
                    let enc = generation_of(keyring.active(KeyUse::Encryption).unwrap().0);
                    assert_eq!(sig, enc, "torn keyring");
                    assert!(sig >= newest, "a snapshot older than what was published");
                    // Any generation published so far, old ones included.
                    pick = pick
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let n = (pick >> 33) as usize % (newest + 1);
                    let body = messages[n].clone();
                    let view = decoder.decode_json(&body, NOW).unwrap();
                    let key_id = verify_signature(&view, &keyring, NOW, &mut signatures)
                        .unwrap_or_else(|e| panic!("generation {n} refused: {}", e.message()));
                    assert_eq!(key_id, format!("sig-{n}"));
                    let (plain, _) = open_payload(&view, &keyring, NOW, &mut cipher)
                        .unwrap_or_else(|e| {
                            panic!("generation {n} not decrypted: {}", e.message())
                        });
                    assert_eq!(
                        plain,
                        format!(r#"{{"command":"demo.echo","args":{n}}}"#).as_bytes()
                    );
                    checked += 1;
                    if finished {
                        return checked;
                    }
                }
            })
        })
        .collect();

    for n in 1..=ROTATIONS {
        shared.rotate(generation(n), NOW).unwrap();
        published.store(n, Ordering::Release);
        std::thread::yield_now();
    }
    done.store(true, Ordering::Release);
    let checked: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let keyring = shared.load();
    assert_eq!(
        keyring.active(KeyUse::Signing).unwrap().0,
        format!("sig-{ROTATIONS}")
    );
    // Every generation is still there: 101 signing and 101 encryption keys.
    assert_eq!(keyring.len(), 2 * (ROTATIONS + 1));
    assert!(checked >= READERS);
    eprintln!("{checked} messages verified and decrypted across {ROTATIONS} rotations");
}
