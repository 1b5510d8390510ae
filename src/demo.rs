//! The demo handlers `mcp-engine serve` registers (docs/cli.md): `demo.echo`,
//! `demo.sleep`, `demo.panic`, and a subscriber of the event
//! `demo.notice`. They exist to try the server and to test it: every path
//! of the engine (an answer now, a deferred answer, a timeout, a panic, an
//! event) is one request away.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::engine::{Answer, EngineBuilder, Event, Request, Responder};
use crate::error::{Code, Error};
use crate::json::RawJson;

/// The longest `demo.sleep` accepted, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// Registers the demo handlers on `builder`. Returns the builder and a
/// counter of `demo.notice` events received.
pub fn register(builder: EngineBuilder) -> (EngineBuilder, Arc<AtomicU64>) {
    let notices = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&notices);
    let sleeper = Sleeper::start();
    let builder = builder
        .command("demo.echo", echo)
        .command("demo.sleep", move |request: &Request<'_>| {
            sleeper.sleep(request)
        })
        .command("demo.panic", panic)
        .subscribe("demo.notice", move |event: &Event<'_>| {
            seen.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = event.id(), principal = ?event.caller().principal(), "demo.notice");
            Ok(())
        });
    (builder, notices)
}

/// `demo.echo`: the result is the command's `args` (`null` if none).
fn echo(request: &Request<'_>) -> Result<Answer, Error> {
    Ok(Answer::Result(
        request
            .args()
            .map_or_else(RawJson::null, RawJson::from_json),
    ))
}

/// `demo.panic`: panics, so that the engine answers `internal_error`.
#[allow(clippy::panic)]
fn panic(_: &Request<'_>) -> Result<Answer, Error> {
    panic!("demo.panic was called");
}

/// A sleeping `demo.sleep` request: its length and who to answer.
struct Sleeping {
    ms: u64,
    responder: Responder,
}

/// The sleeping requests: wake-up times with each request's number,
/// earliest first, and the requests by number.
type Sleepers = (BinaryHeap<Reverse<(Instant, u64)>>, HashMap<u64, Sleeping>);

#[derive(Default)]
struct Bed {
    due: Mutex<Sleepers>,
    changed: Condvar,
    stop: AtomicBool,
    sequence: AtomicU64,
}

/// Answers `demo.sleep` requests from a thread of its own, so that no
/// engine worker waits (the deferred command of docs/seed-specification.md).
struct Sleeper {
    bed: Arc<Bed>,
}

impl Sleeper {
    fn start() -> Sleeper {
        let bed = Arc::new(Bed::default());
        let watcher = Arc::clone(&bed);
        let started = std::thread::Builder::new()
            .name("mcp-demo-sleep".to_owned())
            .stack_size(256 * 1024)
            .spawn(move || wake_sleepers(&watcher));
        if let Err(e) = started {
            tracing::error!(error = %e, "demo.sleep has no thread; it will time out");
        }
        Sleeper { bed }
    }

    /// `demo.sleep`: answers `{"slept_ms": n}` after `args.ms` milliseconds.
    fn sleep(&self, request: &Request<'_>) -> Result<Answer, Error> {
        let ms = request
            .args()
            .and_then(|args| args.get("ms"))
            .and_then(|ms| ms.as_u64())
            .filter(|ms| *ms <= MAX_SLEEP_MS)
            .ok_or_else(|| {
                Error::new(
                    Code::ValidationFailed,
                    format!("demo.sleep needs args {{\"ms\": 0..={MAX_SLEEP_MS}}}"),
                )
            })?;
        request.answer_later(|responder| {
            let at = Instant::now() + Duration::from_millis(ms);
            let number = self.bed.sequence.fetch_add(1, Ordering::Relaxed);
            {
                let mut due = self.bed.due.lock();
                due.0.push(Reverse((at, number)));
                due.1.insert(number, Sleeping { ms, responder });
            }
            self.bed.changed.notify_one();
        })
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.bed.stop.store(true, Ordering::Release);
        self.bed.changed.notify_one();
    }
}

fn wake_sleepers(bed: &Bed) {
    let mut due = bed.due.lock();
    while !bed.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        match due.0.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let Some(Reverse((_, number))) = due.0.pop() else {
                    continue;
                };
                if let Some(sleeping) = due.1.remove(&number) {
                    let result = RawJson::parse(&format!("{{\"slept_ms\":{}}}", sleeping.ms));
                    // After a timeout the engine has answered already; the
                    // late completion is ignored there.
                    sleeping.responder.complete(result);
                }
            }
            Some(Reverse((at, _))) => {
                let wait = *at - now;
                bed.changed.wait_for(&mut due, wait);
            }
            None => bed.changed.wait(&mut due),
        }
    }
}
