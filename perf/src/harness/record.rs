//! [`Recorder`]: when each message was (meant to be) sent, when its reply
//! came and what it was; one slot per message, written without locks by
//! whichever thread sees the event.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use mcp_engine::Code;
use parking_lot::Mutex;

/// `outcome` values: 0 not yet, 1 answered without error, 2 + the code's
/// index in [`Code::ALL`] for an Error.
const PENDING: u8 = 0;
const OK: u8 = 1;

/// Counters of answers, so that each answering thread mostly has one of
/// its own.
const STRIPES: usize = 8;

/// The calling thread's counter in [`Recorder::done`]: threads take them
/// in turn as they first answer.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

/// Messages `INTERLEAVE` apart share a cache line of the per-message
/// slots (see [`Recorder::slot`]), within tiles of `INTERLEAVE` squared.
const INTERLEAVE: usize = 64;
const TILE: usize = INTERLEAVE * INTERLEAVE;

/// Per-message times and outcomes.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    messages: usize,
    sent_at: Vec<AtomicU64>,
    done_at: Vec<AtomicU64>,
    outcome: Vec<AtomicU8>,
    /// Messages answered, counted per answering thread (see [`stripe`]):
    /// one shared counter bounced its cache line between the workers on
    /// every answer.
    done: [CachePadded<AtomicU64>; STRIPES],
    /// How late the sending thread was for each measured open-loop send,
    /// ns (only that thread records; the lock is never contended).
    send_lag: Mutex<Option<Histogram<u64>>>,
    /// A closed-loop sender parked until `done` reaches this (`u64::MAX`:
    /// none), and its thread.
    wake_at: AtomicU64,
    sender: Mutex<Option<Thread>>,
}

impl Recorder {
    /// Slots for `messages` messages; times count from `start`.
    pub fn new(messages: usize, start: Instant) -> Recorder {
        let slots = messages.div_ceil(TILE) * TILE;
        Recorder {
            start,
            messages,
            sent_at: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            done_at: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            outcome: (0..slots).map(|_| AtomicU8::new(PENDING)).collect(),
            done: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            send_lag: Mutex::new(Histogram::new(3).ok()),
            wake_at: AtomicU64::new(u64::MAX),
            sender: Mutex::new(None),
        }
    }

    /// Where message `index`'s times and outcome are kept: in each tile of
    /// [`TILE`] messages, those [`INTERLEAVE`] apart side by side. Messages
    /// go to workers round robin, so consecutive ones are answered on
    /// different threads, and their slots side by side bounced a cache line
    /// between the workers on every answer; messages 64 apart go to one
    /// worker whenever the worker count divides 64. Tiles keep the slots a
    /// thread writes meanwhile on a few pages (a transposition of the whole
    /// array cost more in TLB misses than it saved).
    fn slot(&self, index: usize) -> usize {
        let within = index % TILE;
        index - within + (within % INTERLEAVE) * INTERLEAVE + within / INTERLEAVE
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The clock's origin.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Message `index` was (meant to be) sent at `at` ns.
    pub fn sent(&self, index: usize, at: u64) {
        if index >= self.messages {
            return;
        }
        if let Some(slot) = self.sent_at.get(self.slot(index)) {
            slot.store(at, Ordering::Relaxed);
        }
    }

    /// The sending thread got to a send due at `due` ns only `lag` ns late.
    pub fn lagged(&self, lag: u64) {
        if let Some(histogram) = self.send_lag.lock().as_mut() {
            let _ = histogram.record(lag.max(1));
        }
    }

    /// The send lags recorded, if any.
    pub fn send_lags(&self) -> Option<Histogram<u64>> {
        self.send_lag.lock().clone().filter(|h| !h.is_empty())
    }

    /// Message `index` was answered now: without error, or with `code`.
    /// Only the first answer of a message counts.
    pub fn answered(&self, index: usize, code: Option<Code>) {
        let value = match code {
            None => OK,
            Some(code) => 2 + Code::ALL.iter().position(|c| *c == code).unwrap_or(0) as u8,
        };
        if index >= self.messages {
            return;
        }
        let index = self.slot(index);
        let Some(outcome) = self.outcome.get(index) else {
            return;
        };
        if outcome
            .compare_exchange(PENDING, value, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if let Some(slot) = self.done_at.get(index) {
                slot.store(self.now(), Ordering::Relaxed);
            }
            if let Some(done) = self.done.get(stripe()) {
                done.fetch_add(1, Ordering::SeqCst);
            }
            // The sum only while a sender waits (`wake_at` set, rarely).
            let wake_at = self.wake_at.load(Ordering::SeqCst);
            if wake_at != u64::MAX
                && self.answered_count(Ordering::SeqCst) >= wake_at
                && self.wake_at.swap(u64::MAX, Ordering::SeqCst) != u64::MAX
                && let Some(sender) = &*self.sender.lock()
            {
                sender.unpark();
            }
        }
    }

    /// Closed loop: parks the calling (sending) thread until `target`
    /// messages are answered. Blocking, not yielding in a loop: a sender
    /// spinning on `sched_yield` took half a core here from the threads it
    /// measures. The answer that reaches `target` unparks it; the timeout
    /// only bounds a wait should that ever be missed.
    pub fn wait_until_done(&self, target: u64) {
        if self.done() >= target {
            return;
        }
        self.sender.lock().get_or_insert_with(std::thread::current);
        // SeqCst with `answered`'s increment-then-load: either this sees
        // the answer, or the answer sees this target.
        self.wake_at.store(target, Ordering::SeqCst);
        while self.answered_count(Ordering::SeqCst) < target {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        self.wake_at.store(u64::MAX, Ordering::SeqCst);
    }

    /// Messages answered so far.
    pub fn done(&self) -> u64 {
        self.answered_count(Ordering::Acquire)
    }

    /// The stripes' sum (each read with `order`).
    fn answered_count(&self, order: Ordering) -> u64 {
        self.done.iter().map(|stripe| stripe.load(order)).sum()
    }

    /// Messages.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether it has no slots.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// For each answered message sent in `[from, to)` ns: its latency in ns
    /// and its error code, if any.
    pub fn answered_between(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = (u64, Option<Code>)> + '_ {
        (0..self.len()).filter_map(move |i| {
            let i = self.slot(i);
            let sent = self.sent_at.get(i)?.load(Ordering::Relaxed);
            let outcome = self.outcome.get(i)?.load(Ordering::Acquire);
            if outcome == PENDING || sent < from || sent >= to {
                return None;
            }
            let done = self.done_at.get(i)?.load(Ordering::Relaxed);
            let code = (outcome >= 2)
                .then(|| Code::ALL.get(usize::from(outcome - 2)).copied())
                .flatten();
            Some((done.saturating_sub(sent), code))
        })
    }

    /// Messages sent in `[from, to)` ns that were never answered.
    pub fn unanswered_between(&self, from: u64, to: u64, sent_count: usize) -> u64 {
        (0..sent_count.min(self.len()))
            .map(|i| self.slot(i))
            .filter(|&i| {
                let sent = self.sent_at.get(i).map_or(0, |s| s.load(Ordering::Relaxed));
                let outcome = self
                    .outcome
                    .get(i)
                    .map_or(OK, |o| o.load(Ordering::Acquire));
                outcome == PENDING && sent >= from && sent < to
            })
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn answers_from_many_threads_are_counted_once_each_and_wake_the_sender() {
        const THREADS: usize = 11; // more than the stripes: some share one
        const EACH: usize = 1_000;
        let recorder = Arc::new(Recorder::new(THREADS * EACH, Instant::now()));
        for index in 0..THREADS * EACH {
            recorder.sent(index, 1);
        }
        let answering: Vec<_> = (0..THREADS)
            .map(|thread| {
                let recorder = Arc::clone(&recorder);
                std::thread::spawn(move || {
                    for index in (thread * EACH)..((thread + 1) * EACH) {
                        let code = (index % 10 == 0).then_some(Code::Timeout);
                        recorder.answered(index, code);
                        // A second answer of a message does not count.
                        recorder.answered(index, None);
                    }
                })
            })
            .collect();
        // An index past the messages is no message (nor a slot of one).
        recorder.answered(THREADS * EACH, None);
        recorder.sent(THREADS * EACH, 1);
        // Woken by the answer that reaches the target, whichever thread's.
        recorder.wait_until_done((THREADS * EACH) as u64);
        for thread in answering {
            thread.join().unwrap();
        }
        assert_eq!(recorder.done(), (THREADS * EACH) as u64);
        let answers: Vec<_> = recorder.answered_between(0, u64::MAX).collect();
        assert_eq!(answers.len(), THREADS * EACH);
        let timeouts = answers
            .iter()
            .filter(|(_, code)| *code == Some(Code::Timeout))
            .count();
        assert_eq!(timeouts, THREADS * EACH / 10);
        assert_eq!(recorder.unanswered_between(0, u64::MAX, THREADS * EACH), 0);
    }
}
