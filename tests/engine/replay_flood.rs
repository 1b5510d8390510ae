//! The replay guard under concurrent load: the memory bound holds under a
//! flood of unique ids, nothing is forgotten while live, and a duplicate
//! racing on two threads is accepted once; and each principal's share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_engine::Code;
use mcp_engine::security::test_support::ReplayGuard;

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

#[test]
fn the_bound_holds_under_a_flood_of_unique_ids() {
    let guard = Arc::new(ReplayGuard::new(4096, 300, NOW));
    let accepted = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (guard, accepted, exhausted) = (
                Arc::clone(&guard),
                Arc::clone(&accepted),
                Arc::clone(&exhausted),
            );
            std::thread::spawn(move || {
                for n in 0..20_000 {
                    match guard.check("flood", &format!("t{t}-{n}"), NOW, NOW) {
                        Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                        Err(e) if e.code() == Code::ResourceExhausted => {
                            exhausted.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => panic!("unexpected {:?}", e.code()),
                    };
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let accepted = accepted.load(Ordering::Relaxed);
    assert_eq!(accepted + exhausted.load(Ordering::Relaxed), 80_000);
    assert!(guard.len() <= guard.capacity());
    assert_eq!(accepted, guard.len());
    assert!(
        accepted >= guard.capacity() * 9 / 10,
        "{accepted} of {}",
        guard.capacity()
    );
    // Nothing accepted was forgotten: each is a replay now.
    let mut replays = 0;
    for t in 0..4 {
        for n in 0..20_000 {
            if guard
                .check("flood", &format!("t{t}-{n}"), NOW, NOW + 1)
                .is_err()
            {
                replays += 1;
            }
        }
    }
    assert_eq!(
        replays, 80_000,
        "accepted ids are refused, the rest find no room"
    );
}

#[test]
fn a_duplicate_racing_on_two_threads_is_accepted_once() {
    for round in 0..200 {
        let guard = Arc::new(ReplayGuard::new(1024, 300, NOW));
        let id = format!("race-{round}");
        let outcomes: Vec<_> = (0..2)
            .map(|_| {
                let (guard, id) = (Arc::clone(&guard), id.clone());
                std::thread::spawn(move || guard.check("alice", &id, NOW, NOW).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            outcomes.iter().filter(|&&ok| ok).count(),
            1,
            "round {round}"
        );
    }
}

mod shares {
    //! One principal flooding a replay table exhausts only its share: the
    //! engine end to end, two principals, both tables.

    use mcp_engine::codec::Codec;
    use mcp_engine::engine::{EngineBuilder, Outcome};
    use mcp_engine::security::Sealer;
    use mcp_engine::{Code, Field, MessageType, RawJson, SecurityLevel};

    use crate::common::{LOCAL, encode, message, setup};

    /// A Standard `demo.echo` with `id`, on `stream` at `seq` if given.
    fn echo(sealer: &mut Sealer, id: &str, stream: Option<(&str, u64)>) -> Vec<u8> {
        let mut m = message(
            sealer,
            id,
            MessageType::Command,
            SecurityLevel::Standard,
            r#"{"command":"demo.echo"}"#,
        );
        if let Some((stream, seq)) = stream {
            let replay = format!(r#"{{"replay":{{"stream":"{stream}","seq":{seq}}}}}"#);
            m.metadata = Field::Present(RawJson::parse(&replay).unwrap());
            m.version = Some("1.1".into());
        }
        encode(&m, Codec::Json)
    }

    #[test]
    fn a_principal_at_its_share_is_refused_while_another_is_served_in_both_tables() {
        const IDS: u64 = 1000;
        const STREAMS: u64 = 8;
        let s = setup(|c| {
            c.security.replay_capacity = 1 << 16;
            c.security.replay_streams = 64;
            // Every principal's share, unless a role says more: admin's does.
            c.security.principal_replay_ids = Some(IDS);
            c.security.principal_replay_streams = Some(STREAMS);
            let admin = c.authorization.roles.get_mut("admin").unwrap();
            admin.replay_ids = Some(1 << 16);
            admin.replay_streams = Some(64);
        });
        let engine = EngineBuilder::new(s.config.clone())
            .command("demo.echo", |_: &mcp_engine::engine::Request<'_>| {
                Ok(mcp_engine::engine::Answer::Result(RawJson::null()))
            })
            .start()
            .unwrap();
        let mut reader = s.sealer(&s.reader);
        let mut admin = s.sealer(&s.admin);
        let outcome = |body: Vec<u8>| engine.call(Codec::Json, body, LOCAL).outcome;

        // The reader floods unique ids: answered up to its share (and at
        // most one reserved block per worker past it), then refused.
        let (mut answered, mut refused) = (0u64, 0u64);
        for n in 0..3 * IDS {
            match outcome(echo(&mut reader, &format!("r-{n}"), None)) {
                Outcome::Response => answered += 1,
                Outcome::Error(Code::ResourceExhausted) => refused += 1,
                other => panic!("reader id {n}: {other:?}"),
            }
        }
        assert!(
            (IDS..=IDS + 2 * 64).contains(&answered),
            "{answered} answered"
        );
        assert_eq!(answered + refused, 3 * IDS);
        // The admin is still served, by id, well past the reader's share.
        for n in 0..2 * IDS {
            let id = format!("a-{n}");
            assert_eq!(
                outcome(echo(&mut admin, &id, None)),
                Outcome::Response,
                "{id}"
            );
        }

        // The reader opens new streams: eight, then refused; its old
        // streams still take numbers.
        let mut opened = 0;
        for n in 0..20 {
            let stream = format!("reader-{n}");
            match outcome(echo(&mut reader, &format!("rs-{n}"), Some((&stream, 1)))) {
                Outcome::Response => opened += 1,
                Outcome::Error(Code::ResourceExhausted) => {}
                other => panic!("reader stream {n}: {other:?}"),
            }
        }
        assert_eq!(opened, STREAMS);
        assert_eq!(
            outcome(echo(&mut reader, "rs-again", Some(("reader-0", 2)))),
            Outcome::Response
        );
        // The admin opens streams of its own.
        for n in 0..20 {
            let stream = format!("admin-{n}");
            let id = format!("as-{n}");
            assert_eq!(
                outcome(echo(&mut admin, &id, Some((&stream, 1)))),
                Outcome::Response
            );
        }
        let metrics = engine.metrics();
        assert_eq!(metrics.errors_of(Code::ResourceExhausted), refused + 12);
        engine.shutdown();
    }
}
