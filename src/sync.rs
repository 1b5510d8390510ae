//! The one place that names synchronization primitives: `std`, `arc-swap`
//! and `parking_lot` normally, loom's models under `--cfg loom`.
//!
//! Everything concurrent in the crate imports from here, so the code that
//! loom checks (`loom-tests/`) is the code that ships. Nothing else in the
//! crate may name `std::sync::atomic`, `arc_swap` or `parking_lot`.

pub(crate) use std::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// A process-wide counter in a `static` (loom's atomics cannot be built
/// in a const context). Only for numbering things, never for a hand-over
/// between threads that a model should check.
pub(crate) use std::sync::atomic::AtomicU64 as StaticCounter;

/// Threads: `std::thread` normally, loom's model threads under loom.
pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{Thread, current, park, yield_now};

    #[cfg(loom)]
    pub(crate) use loom::thread::{Thread, current, park, yield_now};
}

/// One step of a busy wait on another thread's progress: a short spin
/// normally; under loom a yield, which tells the model checker this thread
/// cannot go on alone (a spin would look like an endless loop to it).
pub(crate) fn spin(backoff: &crossbeam_utils::Backoff) {
    #[cfg(not(loom))]
    backoff.spin();
    #[cfg(loom)]
    {
        let _ = backoff;
        loom::thread::yield_now();
    }
}

/// Interior mutability whose accesses loom can check: `with` and `with_mut`
/// hand out raw pointers, and the caller's `unsafe` block states why the
/// access is exclusive (or shared) at that point.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T> {
    #[cfg(not(loom))]
    inner: std::cell::UnsafeCell<T>,
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell {
            #[cfg(not(loom))]
            inner: std::cell::UnsafeCell::new(value),
            #[cfg(loom)]
            inner: loom::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` on a pointer for reading.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.inner.get())
        }
        #[cfg(loom)]
        {
            self.inner.with(f)
        }
    }

    /// Runs `f` on a pointer for writing.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.inner.get())
        }
        #[cfg(loom)]
        {
            self.inner.with_mut(f)
        }
    }
}

/// A mutual-exclusion lock whose guard is taken without poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            // loom's mutex poisons only if a model thread panicked, which
            // already fails the model.
            #[allow(clippy::unwrap_used)]
            self.inner.lock().unwrap()
        }
    }

    /// The guard, if no one holds the lock now.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        {
            self.inner.try_lock()
        }
        #[cfg(loom)]
        {
            self.inner.try_lock().ok()
        }
    }
}

/// A shared value replaced whole and read without waiting: readers take a
/// snapshot that stays valid however many replacements follow; a writer
/// never waits for readers.
///
/// `arc-swap` normally. Under loom, a mutex around an `Arc`: loom cannot
/// model arc-swap's internals, so the models check the code around the swap
/// (that every reader sees one whole value, and read-copy-update loses no
/// writer's change), not arc-swap itself.
pub(crate) struct SwapCell<T> {
    #[cfg(not(loom))]
    inner: Arc<arc_swap::ArcSwap<T>>,
    #[cfg(loom)]
    inner: Arc<loom::sync::Mutex<Arc<T>>>,
}

/// One reader's cache of a [`SwapCell`]'s value, for a thread that reads
/// it for every message: while the value is unchanged, a
/// [`load`](Self::load) is one read of the cell's pointer, where a
/// [`SwapCell::load`] registers its snapshot (a fence and an atomic
/// exchange, and another to release it). A replacement is seen at the next
/// load, as with a snapshot. The cache keeps the value it last returned
/// alive until its next load.
pub(crate) struct CellCache<T> {
    #[cfg(not(loom))]
    cache: arc_swap::Cache<Arc<arc_swap::ArcSwap<T>>, Arc<T>>,
    #[cfg(loom)]
    cell: Arc<loom::sync::Mutex<Arc<T>>>,
    #[cfg(loom)]
    current: Arc<T>,
}

impl<T> CellCache<T> {
    /// The cell's current value.
    pub(crate) fn load(&mut self) -> &Arc<T> {
        #[cfg(not(loom))]
        {
            self.cache.load()
        }
        #[cfg(loom)]
        {
            #[allow(clippy::unwrap_used)]
            let current = Arc::clone(&self.cell.lock().unwrap());
            self.current = current;
            &self.current
        }
    }
}

/// A reader's snapshot of a [`SwapCell`].
#[cfg(not(loom))]
pub(crate) type Snapshot<T> = arc_swap::Guard<Arc<T>>;
/// A reader's snapshot of a [`SwapCell`].
#[cfg(loom)]
pub(crate) type Snapshot<T> = Arc<T>;

/// The `Arc` behind a snapshot, to keep or send to another thread.
pub(crate) fn snapshot_arc<T>(snapshot: &Snapshot<T>) -> Arc<T> {
    #[cfg(not(loom))]
    {
        Arc::clone(snapshot)
    }
    #[cfg(loom)]
    {
        Arc::clone(snapshot)
    }
}

impl<T> SwapCell<T> {
    pub(crate) fn new(value: Arc<T>) -> SwapCell<T> {
        SwapCell {
            #[cfg(not(loom))]
            inner: Arc::new(arc_swap::ArcSwap::new(value)),
            #[cfg(loom)]
            inner: Arc::new(loom::sync::Mutex::new(value)),
        }
    }

    /// A cache of the value for one reader (see [`CellCache`]).
    pub(crate) fn cache(&self) -> CellCache<T> {
        #[cfg(not(loom))]
        {
            CellCache {
                cache: arc_swap::Cache::new(Arc::clone(&self.inner)),
            }
        }
        #[cfg(loom)]
        {
            CellCache {
                cell: Arc::clone(&self.inner),
                current: self.load(),
            }
        }
    }

    /// The current value, without waiting for writers.
    pub(crate) fn load(&self) -> Snapshot<T> {
        #[cfg(not(loom))]
        {
            self.inner.load()
        }
        #[cfg(loom)]
        {
            #[allow(clippy::unwrap_used)]
            Arc::clone(&self.inner.lock().unwrap())
        }
    }

    /// Replaces the value with `update(current)`, retrying if another writer
    /// got in between, so no writer's change is lost. `update` may run more
    /// than once and must not have side effects. Returns the new value.
    pub(crate) fn update(&self, mut update: impl FnMut(&Arc<T>) -> Arc<T>) -> Arc<T> {
        #[cfg(not(loom))]
        {
            let mut current = self.inner.load_full();
            loop {
                let next = update(&current);
                let previous = self.inner.compare_and_swap(&current, Arc::clone(&next));
                if Arc::ptr_eq(&previous, &current) {
                    return next;
                }
                current = arc_swap::Guard::into_inner(previous);
            }
        }
        #[cfg(loom)]
        {
            #[allow(clippy::unwrap_used)]
            let mut slot = self.inner.lock().unwrap();
            let next = update(&slot);
            *slot = Arc::clone(&next);
            next
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SwapCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SwapCell").field(&*self.load()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Arc, SwapCell, snapshot_arc};

    #[test]
    fn a_cache_follows_every_replacement_and_holds_its_value_between() {
        let cell = SwapCell::new(Arc::new(1));
        let mut cache = cell.cache();
        assert_eq!(**cache.load(), 1);
        let held = Arc::clone(cache.load());
        cell.update(|value| Arc::new(**value + 1));
        assert_eq!(**cache.load(), 2);
        assert_eq!(*held, 1);
        // The same value again is the same allocation, not a copy.
        assert!(Arc::ptr_eq(cache.load(), &snapshot_arc(&cell.load())));
        cell.update(|_| Arc::new(7));
        cell.update(|value| Arc::new(**value * 2));
        assert_eq!(**cache.load(), 14);
    }
}
