//! [`Recorder`]: when each message was (meant to be) sent, when its reply
//! came and what it was; one slot per message in flight, written without
//! locks by whichever thread sees the event.
//!
//! A run of messages made beforehand (a pool) has a slot for each. A
//! sustained run (`--sustained`, messages made while it goes) has a ring
//! of slots: a message's slot is taken by the message `capacity` later,
//! and the sender, before it takes it, tallies what it held (answered, or
//! still unanswered a whole ring later, then counted lost). Memory stays
//! the ring's, however long the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use mcp_engine::Code;
use parking_lot::Mutex;

/// A slot's state word: the message's index plus one, shifted, and its
/// outcome in the low byte: 0 not yet, 1 answered without error, 2 + the
/// code's index in [`Code::ALL`] for an Error. 0 is an empty slot.
const PENDING: u64 = 0;
const OK: u64 = 1;
const OUTCOME_BITS: u32 = 8;

fn state(index: usize, outcome: u64) -> u64 {
    ((index as u64 + 1) << OUTCOME_BITS) | outcome
}

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

/// What the answered and unanswered messages sent in a time span came to.
#[derive(Debug)]
pub struct Tally {
    /// Latencies of the answered ones, ns.
    pub latencies: Histogram<u64>,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// Answered.
    pub answered: u64,
    /// Sent and not answered (by the end, or a whole ring later).
    pub unanswered: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies: Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()),
            errors: BTreeMap::new(),
            answered: 0,
            unanswered: 0,
        }
    }

    /// Adds a slot that held `state`, sent at `sent`, answered at `done`,
    /// if it was sent in `[from, to)`.
    fn add(&mut self, state: u64, sent: u64, done: u64, (from, to): (u64, u64)) {
        if state == 0 || sent < from || sent >= to {
            return;
        }
        let outcome = state & ((1 << OUTCOME_BITS) - 1);
        if outcome == PENDING {
            self.unanswered += 1;
            return;
        }
        self.answered += 1;
        let _ = self.latencies.record(done.saturating_sub(sent).max(1));
        if let Some(code) = outcome
            .checked_sub(2)
            .and_then(|i| Code::ALL.get(i as usize))
        {
            *self.errors.entry(code.as_str().to_owned()).or_insert(0) += 1;
        }
    }
}

/// A histogram with 3 significant digits always builds; this is never
/// reached.
fn unreachable_histogram() -> Histogram<u64> {
    Histogram::<u64>::new(2).unwrap_or_else(|_| std::process::abort())
}

/// Per-message times and outcomes.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// Messages it takes: their indexes are below this.
    messages: usize,
    /// Slots (a multiple of [`TILE`]); messages this far apart share one.
    capacity: usize,
    state: Vec<AtomicU64>,
    sent_at: Vec<AtomicU64>,
    done_at: Vec<AtomicU64>,
    /// Messages answered, counted per answering thread (see [`stripe`]):
    /// one shared counter bounced its cache line between the workers on
    /// every answer.
    done: [CachePadded<AtomicU64>; STRIPES],
    /// What the slots the sender took over held, and the span it counts
    /// (ring only; the sender alone writes it).
    retired: Mutex<(Tally, (u64, u64))>,
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
        Recorder::with_slots(
            messages,
            messages.div_ceil(TILE).max(1) * TILE,
            start,
            (0, 0),
        )
    }

    /// A ring of `slots` (rounded up to a multiple of 4096) for a run of
    /// any length, counting the messages sent in `[from, to)` ns as their
    /// slots are taken over; times count from `start`.
    pub fn ring(slots: usize, start: Instant, from: u64, to: u64) -> Recorder {
        let capacity = slots.div_ceil(TILE).max(1) * TILE;
        Recorder::with_slots(usize::MAX, capacity, start, (from, to))
    }

    fn with_slots(messages: usize, capacity: usize, start: Instant, span: (u64, u64)) -> Recorder {
        let zeroes = || (0..capacity).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Recorder {
            start,
            messages,
            capacity,
            state: zeroes(),
            sent_at: zeroes(),
            done_at: zeroes(),
            done: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            retired: Mutex::new((Tally::new(), span)),
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
        let index = index % self.capacity;
        let within = index % TILE;
        index - within + (within % INTERLEAVE) * INTERLEAVE + within / INTERLEAVE
    }

    /// Slot `slot`'s state, send time and answer time, if it has them.
    fn cells(&self, slot: usize) -> Option<(&AtomicU64, &AtomicU64, &AtomicU64)> {
        Some((
            self.state.get(slot)?,
            self.sent_at.get(slot)?,
            self.done_at.get(slot)?,
        ))
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The clock's origin.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Message `index` was (meant to be) sent at `at` ns. In a ring, what
    /// its slot held is tallied first. Only the sending thread calls it.
    pub fn sent(&self, index: usize, at: u64) {
        if index >= self.messages {
            return;
        }
        let slot = self.slot(index);
        let Some((state, sent_at, done_at)) = self.cells(slot) else {
            return;
        };
        let fresh = Recorder::pending(index);
        let mut old = state.load(Ordering::Acquire);
        if old != 0 {
            // A message a whole ring earlier: taken over pending only by
            // a compare-and-swap, so that an answer racing it either lands
            // first (and is tallied) or finds the slot gone.
            while old & ((1 << OUTCOME_BITS) - 1) == PENDING {
                match state.compare_exchange(old, fresh, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => old = now,
                }
            }
            let mut retired = self.retired.lock();
            let (tally, span) = &mut *retired;
            let span = *span;
            tally.add(
                old,
                sent_at.load(Ordering::Relaxed),
                done_at.load(Ordering::Relaxed),
                span,
            );
        }
        sent_at.store(at, Ordering::Relaxed);
        state.store(fresh, Ordering::Release);
    }

    fn pending(index: usize) -> u64 {
        state(index, PENDING)
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
    /// Only the first answer of a message counts, and none after its slot
    /// was taken over.
    pub fn answered(&self, index: usize, code: Option<Code>) {
        let value = match code {
            None => OK,
            Some(code) => 2 + Code::ALL.iter().position(|c| *c == code).unwrap_or(0) as u64,
        };
        if index >= self.messages {
            return;
        }
        let slot = self.slot(index);
        let (Some(state), Some(done_at)) = (self.state.get(slot), self.done_at.get(slot)) else {
            return;
        };
        let pending = Recorder::pending(index);
        if state.load(Ordering::Acquire) != pending {
            return;
        }
        // Before the outcome: whoever sees the outcome sees the time.
        done_at.store(self.now(), Ordering::Relaxed);
        if state
            .compare_exchange(
                pending,
                super::record::state(index, value),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
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

    /// The messages sent in `[from, to)` ns: those its slots hold now,
    /// and (in a ring) those tallied as their slots were taken over.
    pub fn tally(&self, from: u64, to: u64) -> Tally {
        let mut tally = Tally::new();
        for slot in 0..self.capacity {
            let Some((state, sent, done)) = self.cells(slot) else {
                continue;
            };
            let state = state.load(Ordering::Acquire);
            tally.add(
                state,
                sent.load(Ordering::Relaxed),
                done.load(Ordering::Relaxed),
                (from, to),
            );
        }
        let retired = self.retired.lock();
        let _ = tally.latencies.add(&retired.0.latencies);
        for (code, n) in &retired.0.errors {
            *tally.errors.entry(code.clone()).or_insert(0) += n;
        }
        tally.answered += retired.0.answered;
        tally.unanswered += retired.0.unanswered;
        tally
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_ring_tallies_the_slots_it_takes_over_and_counts_the_lost() {
        // One tile of slots, messages counted from 100 ns on.
        let recorder = Recorder::ring(1, Instant::now(), 100, u64::MAX);
        let laps = 3 * TILE;
        for index in 0..laps {
            recorder.sent(index, 100 + index as u64);
            // Every tenth is never answered; every 7th is a timeout.
            if index % 10 != 0 {
                let code = (index % 7 == 0).then_some(Code::Timeout);
                recorder.answered(index, code);
            }
        }
        // A late answer to a message whose slot was taken is dropped.
        recorder.answered(5, None);
        recorder.answered(10, None);
        let tally = recorder.tally(100, u64::MAX);
        let lost = laps.div_ceil(10) as u64;
        assert_eq!(tally.unanswered, lost);
        assert_eq!(tally.answered, laps as u64 - lost);
        let timeouts = (0..laps).filter(|i| i % 10 != 0 && i % 7 == 0).count() as u64;
        assert_eq!(tally.errors.get("timeout"), Some(&timeouts));
        assert_eq!(tally.latencies.len(), tally.answered);
        // Taken-over slots count by the span set at the start: here the
        // first lap (sent before 100 + TILE ns) is the warm-up.
        let recorder = Recorder::ring(1, Instant::now(), 100 + TILE as u64, u64::MAX);
        for index in 0..laps {
            recorder.sent(index, 100 + index as u64);
            recorder.answered(index, None);
        }
        let tally = recorder.tally(100 + TILE as u64, u64::MAX);
        assert_eq!(tally.answered, (laps - TILE) as u64);
    }

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
        let tally = recorder.tally(0, u64::MAX);
        assert_eq!(tally.answered, (THREADS * EACH) as u64);
        assert_eq!(
            tally.errors.get("timeout"),
            Some(&((THREADS * EACH / 10) as u64))
        );
        assert_eq!(tally.unanswered, 0);
    }
}
