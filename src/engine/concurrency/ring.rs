//! A bounded lock-free queue: many producers, one or more consumers.
//!
//! Dmitry Vyukov's bounded MPMC array queue. Every slot carries a sequence
//! number that says whose turn it is: a producer may write slot `i` when
//! its sequence equals the producer's position, a consumer may read it when
//! the sequence equals position + 1. Producers claim positions with a CAS on
//! `tail`; the sequence store (Release) publishes the value to the consumer
//! that loads it (Acquire). Nothing is allocated after `new`.
//!
//! Workers use it as their ingress queue (submitters and completions push,
//! the worker pops); loom models in `loom-tests/tests/ring.rs` check full,
//! empty, wrap-around and concurrent producers.

// Public for the loom models and the queue bench (`engine::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use crossbeam_utils::{Backoff, CachePadded};

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

struct Slot<T> {
    sequence: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded queue of `T` (see the module docs).
pub struct Ring<T> {
    /// The next position to read.
    head: CachePadded<AtomicUsize>,
    /// The next position to write.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    mask: usize,
}

// SAFETY: a value moves from the producer that wrote it to the one consumer
// that claimed its position; the slot sequence hands it over with
// Release/Acquire, so `T: Send` is all that sharing the ring needs.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; no `&T` is ever handed out, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T> Ring<T> {
    /// A ring holding at least `capacity` values (rounded up to a power of
    /// two, at least 2).
    pub fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity)
            .map(|i| Slot {
                sequence: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            mask: capacity - 1,
        }
    }

    /// How many values the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// How many values are queued now (a snapshot; it may be stale at once).
    pub fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity())
    }

    /// Whether nothing is queued now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, position: usize) -> &Slot<T> {
        // `position & mask` is below `slots.len()`, which is `mask + 1`.
        #[allow(clippy::indexing_slicing)]
        &self.slots[position & self.mask]
    }

    /// Queues `value`, or gives it back if the ring is full.
    pub fn push(&self, value: T) -> Result<(), T> {
        let backoff = Backoff::new();
        let mut position = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(position);
            let sequence = slot.sequence.load(Ordering::Acquire);
            let lag = sequence.wrapping_sub(position) as isize;
            if lag == 0 {
                match self.tail.compare_exchange_weak(
                    position,
                    position.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS gave this producer position
                        // `position`, and the slot's sequence equal to it
                        // says its previous value was read out: nobody else
                        // touches the slot until the store below.
                        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                        slot.sequence
                            .store(position.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => position = current,
                }
            } else if lag < 0 {
                // The slot still holds the value from one lap ago: full.
                return Err(value);
            } else {
                // Another producer claimed this position; catch up. A
                // read-modify-write reads the latest tail (a plain load may
                // return an older one, and loom explores exactly that).
                crate::sync::spin(&backoff);
                position = self.tail.fetch_add(0, Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest value, or `None` if the ring is empty.
    pub fn pop(&self) -> Option<T> {
        let backoff = Backoff::new();
        let mut position = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(position);
            let sequence = slot.sequence.load(Ordering::Acquire);
            let lag = sequence.wrapping_sub(position.wrapping_add(1)) as isize;
            if lag == 0 {
                match self.head.compare_exchange_weak(
                    position,
                    position.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the sequence (loaded with Acquire) says a
                        // producer wrote this slot and published it, and the
                        // CAS made this consumer its only reader.
                        let value = slot
                            .value
                            .with(|cell| unsafe { (*cell).assume_init_read() });
                        slot.sequence
                            .store(position.wrapping_add(self.capacity()), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => position = current,
                }
            } else if lag < 0 {
                // Not written yet: empty (or a producer is mid-write).
                return None;
            } else {
                crate::sync::spin(&backoff);
                position = self.head.fetch_add(0, Ordering::Relaxed);
            }
        }
    }
}

impl<T> Ring<T> {
    /// Calls `look` on the oldest value without taking it; `None` if the
    /// ring is empty (or its oldest value is still being written).
    ///
    /// # Safety
    ///
    /// The caller must be the ring's only consumer until this returns: no
    /// other thread may [`pop`](Self::pop) meanwhile. (A pop elsewhere could
    /// hand the value out and let a producer overwrite its slot while `look`
    /// reads it.)
    pub unsafe fn peek_with<R>(&self, look: impl FnOnce(&T) -> R) -> Option<R> {
        // The only consumer wrote `head` last, or saw it written by the
        // consumer before it through whatever handed the role over.
        let position = self.head.load(Ordering::Relaxed);
        let slot = self.slot(position);
        if slot.sequence.load(Ordering::Acquire) != position.wrapping_add(1) {
            return None;
        }
        // SAFETY: the sequence (loaded with Acquire) says a producer wrote
        // this slot and published it. Only a pop of `position` lets a
        // producer write the slot again, and the caller promises that no pop
        // runs before this returns, so the value stays as it is meanwhile.
        Some(
            slot.value
                .with(|cell| look(unsafe { (*cell).assume_init_ref() })),
        )
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_full_and_empty() {
        let ring = Ring::new(3);
        assert_eq!(ring.capacity(), 4);
        assert_eq!(ring.pop(), None);
        for i in 0..4 {
            ring.push(i).unwrap();
        }
        assert_eq!(ring.push(9), Err(9));
        assert_eq!(ring.len(), 4);
        for i in 0..4 {
            assert_eq!(ring.pop(), Some(i));
        }
        assert!(ring.is_empty());
    }

    #[test]
    fn wraps_around_many_laps() {
        let ring = Ring::new(2);
        for i in 0..1000u32 {
            ring.push(i).unwrap();
            assert_eq!(ring.pop(), Some(i));
        }
    }

    #[test]
    fn drops_what_is_left() {
        let value = Arc::new(());
        {
            let ring = Ring::new(4);
            ring.push(Arc::clone(&value)).unwrap();
            ring.push(Arc::clone(&value)).unwrap();
            assert_eq!(Arc::strong_count(&value), 3);
        }
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn four_producers_lose_and_repeat_nothing_and_peeks_see_the_next_value() {
        let ring = Arc::new(Ring::new(64));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let mut value = p << 32 | i;
                        while let Err(back) = ring.push(value) {
                            value = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; 4];
        let mut received = 0;
        while received < 200_000 {
            // SAFETY: this thread is the ring's only consumer.
            let peeked = unsafe { ring.peek_with(|value| *value) };
            match ring.pop() {
                Some(value) => {
                    // What a peek saw is what the next pop takes.
                    assert!(peeked.is_none_or(|peeked| peeked == value));
                    let (p, i) = ((value >> 32) as usize, value & 0xffff_ffff);
                    // Per producer, order holds.
                    assert_eq!(i, next[p]);
                    next[p] += 1;
                    received += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert_eq!(next, [50_000; 4]);
        assert_eq!(ring.pop(), None);
    }
}
