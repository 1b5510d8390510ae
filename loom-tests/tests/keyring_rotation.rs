//! Key rotation: a reader sees one whole keyring, before or after, never a
//! mix; two rotations racing are both applied (neither key set is lost).

use loom_tests::Arc;
use loom_tests::thread;
use mcp_engine::security::{Key, KeyUse, Keyring, SharedKeyring};

fn generation(n: u8) -> Keyring {
    Keyring::new()
        .with(&format!("sig-{n}"), Key::signing(&[n; 32]).unwrap(), true)
        .unwrap()
        .with(
            &format!("enc-{n}"),
            Key::encryption(&[n; 32]).unwrap(),
            true,
        )
        .unwrap()
}

fn active_generations(shared: &SharedKeyring) -> (String, String) {
    let keyring = shared.load();
    let sig = keyring.active(KeyUse::Signing).unwrap().0;
    let enc = keyring.active(KeyUse::Encryption).unwrap().0;
    (sig.replace("sig-", ""), enc.replace("enc-", ""))
}

#[test]
fn a_reader_sees_the_old_or_the_new_keyring_whole() {
    loom_tests::model(|| {
        let shared = Arc::new(SharedKeyring::new(generation(0), 60));
        let rotator = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.rotate(generation(1), 0).unwrap())
        };
        let (sig, enc) = active_generations(&shared);
        assert_eq!(sig, enc, "torn keyring");
        // Whichever it saw, the old signing key verifies (active or retired).
        assert!(shared.load().get(KeyUse::Signing, "sig-0", 0).is_some());
        rotator.join().unwrap();
        assert_eq!(active_generations(&shared).0, "1");
    });
}

#[test]
fn two_racing_rotations_are_both_applied() {
    loom_tests::model(|| {
        let shared = Arc::new(SharedKeyring::new(generation(0), 60));
        let threads: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|n| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || shared.rotate(generation(n), 0).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let keyring = shared.load();
        // Whichever came last is active; the other two generations are kept
        // for their grace period: no rotation overwrote another unseen.
        for n in 0..3 {
            assert!(
                keyring
                    .get(KeyUse::Signing, &format!("sig-{n}"), 0)
                    .is_some(),
                "sig-{n} lost"
            );
            assert!(
                keyring
                    .get(KeyUse::Encryption, &format!("enc-{n}"), 0)
                    .is_some(),
                "enc-{n} lost"
            );
        }
        let (sig, enc) = active_generations(&shared);
        assert_eq!(sig, enc);
    });
}
