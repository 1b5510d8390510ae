//! Engines behind one NATS broker in a queue group (feature `nats`; needs
//! Debian's `nats-server`, which `.ci/run` installs): the load is spread,
//! every request is answered once, and losing an engine mid-run loses no
//! request silently: each is answered or comes back to its client as a
//! timeout, and is retried.
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::common::nats::{NatsEngine, SharedBroker, nats_config};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 25_000;
/// Requests one client keeps in flight.
const WINDOW: usize = 256;
/// A request unanswered this long has timed out, and is sent again.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 4;
/// The third engine stops once this many replies are in.
const STOP_AFTER: u64 = 75_000;

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    answered: usize,
    timeouts: usize,
    /// Replies beyond the first to one attempt: must be none.
    duplicates: usize,
    /// Replies to a timed-out attempt, after its retry went out.
    late: usize,
    /// Retries answered `replay_detected`: an engine had the id already.
    replays: usize,
    /// Replies that were neither a Response nor, to a retry, a replay.
    unexpected: Vec<String>,
}

const SENT: u8 = 1;
const REPLIED: u8 = 2;
const EXPIRED: u8 = 3;

async fn client(url: String, subject: String, bodies: Vec<Bytes>, total: Arc<AtomicU64>) -> Seen {
    let nc = async_nats::connect(url).await.unwrap();
    let inbox = nc.new_inbox();
    let mut replies = nc.subscribe(format!("{inbox}.*.*")).await.unwrap();
    nc.flush().await.unwrap();
    let mut ledger = Ledger {
        state: vec![[0u8; ATTEMPTS]; bodies.len()],
        answered: vec![false; bodies.len()],
        in_flight: 0,
        seen: Seen::default(),
    };
    let mut queue: VecDeque<(usize, usize)> = (0..bodies.len()).map(|seq| (seq, 0)).collect();
    let mut outstanding: VecDeque<(usize, usize, Instant)> = VecDeque::new();
    while !queue.is_empty() || ledger.in_flight > 0 {
        while ledger.in_flight < WINDOW {
            let Some((seq, attempt)) = queue.pop_front() else {
                break;
            };
            let reply = format!("{inbox}.{seq}.{attempt}");
            nc.publish_with_reply(subject.clone(), reply, bodies[seq].clone())
                .await
                .unwrap();
            ledger.state[seq][attempt] = SENT;
            outstanding.push_back((seq, attempt, Instant::now()));
            ledger.in_flight += 1;
        }
        while let Some(&(seq, attempt, at)) = outstanding.front() {
            if ledger.state[seq][attempt] == REPLIED {
                outstanding.pop_front();
            } else if at.elapsed() > TIMEOUT {
                outstanding.pop_front();
                ledger.state[seq][attempt] = EXPIRED;
                ledger.in_flight -= 1;
                ledger.seen.timeouts += 1;
                assert!(
                    attempt + 1 < ATTEMPTS,
                    "request {seq} timed out {ATTEMPTS} times"
                );
                queue.push_back((seq, attempt + 1));
            } else {
                break;
            }
        }
        let Ok(message) = tokio::time::timeout(Duration::from_millis(100), replies.next()).await
        else {
            continue;
        };
        ledger.record(&message.expect("the inbox subscription ended"));
        total.fetch_add(1, Ordering::Relaxed);
    }
    // Anything more would be a duplicate or a late reply: wait for it.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), replies.next()).await
    {
        ledger.record(&message);
    }
    assert!(
        ledger.answered.iter().all(|&a| a),
        "every request ends answered"
    );
    ledger.seen
}

/// One client's record of every try of every request.
struct Ledger {
    /// Per request, per try: SENT, REPLIED or EXPIRED (0: not sent).
    state: Vec<[u8; ATTEMPTS]>,
    /// Per request: whether any try was answered.
    answered: Vec<bool>,
    /// Tries sent, neither answered nor expired.
    in_flight: usize,
    seen: Seen,
}

impl Ledger {
    /// Takes a reply, addressed `<inbox>.<request>.<try>`.
    fn record(&mut self, message: &async_nats::Message) {
        let mut tokens = message.subject.rsplit('.');
        let attempt: usize = tokens.next().unwrap().parse().unwrap();
        let seq: usize = tokens.next().unwrap().parse().unwrap();
        let body = String::from_utf8_lossy(&message.payload);
        let seen = &mut self.seen;
        if body.contains(r#""type":"Response""#) {
            // The request's own answer.
        } else if attempt > 0 && body.contains("replay_detected") {
            seen.replays += 1;
        } else {
            seen.unexpected.push(body.into_owned());
        }
        let state = &mut self.state[seq][attempt];
        match *state {
            SENT => {
                *state = REPLIED;
                self.in_flight -= 1;
                seen.answered += 1;
            }
            EXPIRED => {
                *state = REPLIED;
                seen.late += 1;
            }
            _ => seen.duplicates += 1,
        }
        self.answered[seq] = true;
    }
}

#[test]
fn three_engines_share_the_load_answer_each_request_once_and_carry_on_without_one() {
    let third = run_with_third_engine_stopped("drained", 5000);
    // Stopped with time to drain, it published the replies of everything
    // it had taken.
    assert_eq!(third.abandoned, 0);
}

#[test]
fn an_engine_stopped_with_no_time_to_drain_loses_no_request_silently() {
    // It stops waiting for its replies at once: their requesters time out
    // and send again, and the other engines answer.
    let third = run_with_third_engine_stopped("cut", 0);
    eprintln!("abandoned: {}", third.abandoned);
    // Each request it took was answered or counted abandoned (and then
    // timed out at its client, which sent it again: checked above).
    assert_eq!(
        third.received,
        third.published + third.unpublished + third.abandoned,
        "{third:?}"
    );
}

/// Runs the load through three engines (on subjects and a queue group
/// named after `name`, the broker being shared) and stops the third
/// mid-run with `drain_timeout_ms`; checks every request's fate and the spread, and
/// returns what the third engine's ingress counted.
fn run_with_third_engine_stopped(name: &str, drain_timeout_ms: u64) -> mcp_engine::nats::NatsStats {
    let broker = SharedBroker::get();
    let url = broker.url();
    let setup = crate::common::setup(|config| config.nats = Some(nats_config(&url, name)));
    let subject = setup.config.nats.as_ref().unwrap().subject.clone();
    // Made beforehand, each with a unique id.
    let bodies: Vec<Vec<Bytes>> = (0..CLIENTS)
        .map(|c| {
            let mut sealer = setup.sealer(&setup.admin);
            (0..PER_CLIENT)
                .map(|n| {
                    Bytes::from(crate::common::command(
                        &mut sealer,
                        &format!("c{c}-{n}"),
                        "demo.echo",
                    ))
                })
                .collect()
        })
        .collect();
    let engines: Vec<NatsEngine> = (0..2).map(|_| NatsEngine::start(&setup.config)).collect();
    let mut third_config = setup.config.clone();
    if let Some(nats) = third_config.nats.as_mut() {
        nats.drain_timeout_ms = drain_timeout_ms;
    }
    let mut third = NatsEngine::start(&third_config);

    let total = Arc::new(AtomicU64::new(0));
    let stopper = {
        let total = Arc::clone(&total);
        std::thread::spawn(move || {
            while total.load(Ordering::Relaxed) < STOP_AFTER {
                std::thread::sleep(Duration::from_millis(5));
            }
            let at_stop = third.responses();
            let stats = third.stop();
            (at_stop, third.responses(), stats)
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen: Vec<Seen> = runtime.block_on(async {
        let clients: Vec<_> = bodies
            .into_iter()
            .map(|bodies| {
                tokio::spawn(client(
                    url.clone(),
                    subject.clone(),
                    bodies,
                    Arc::clone(&total),
                ))
            })
            .collect();
        let mut seen = Vec::new();
        for client in clients {
            seen.push(client.await.unwrap());
        }
        seen
    });
    let (third_at_stop, third_total, third_stats) = stopper.join().unwrap();

    let requests = CLIENTS * PER_CLIENT;
    let answered: usize = seen.iter().map(|s| s.answered + s.late).sum();
    let timeouts: usize = seen.iter().map(|s| s.timeouts).sum();
    eprintln!(
        "clients: {seen:?}\nthird engine: {third_at_stop} responses when stopped, {third_total} after \
         draining, {third_stats:?}"
    );
    for s in &seen {
        assert_eq!(s.duplicates, 0, "a request answered twice");
        assert!(
            s.unexpected.is_empty(),
            "unexpected replies: {:?}",
            s.unexpected.first()
        );
    }
    // Every request was answered; a timed-out one was sent again and the
    // retry answered (or refused as a replay, its first try having run).
    assert!(
        answered >= requests,
        "{answered} answers to {requests} requests"
    );
    // Those it had taken and did not answer timed out at their clients.
    assert!(timeouts as u64 >= third_stats.abandoned);
    assert_eq!(third_stats.unpublished, 0);
    let mut per_engine: Vec<u64> = engines.iter().map(NatsEngine::responses).collect();
    per_engine.push(third_total);
    eprintln!("responses per engine: {per_engine:?}, timeouts {timeouts}");
    for (n, responses) in per_engine.iter().enumerate() {
        assert!(
            *responses * 5 >= requests as u64,
            "engine {n} took {responses} of {requests}: under 20%"
        );
    }
    for mut engine in engines {
        let stats = engine.stop();
        assert_eq!(
            (stats.abandoned, stats.unpublished, stats.malformed),
            (0, 0, 0)
        );
    }
    drop(broker);
    third_stats
}
