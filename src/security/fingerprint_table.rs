//! [`FingerprintTable`]: 64-bit fingerprints with an expiry each, in a
//! fixed table where one lookup reads one cache line.
//!
//! The replay guard checks every authenticated message against millions of
//! remembered ids, so its table never fits in cache: a lookup is a cache
//! miss, and the layout decides how many. A general hash map (hashbrown)
//! keeps its control bytes and its entries apart, two misses per check,
//! measured as 87% of `ReplayGuard::check` and 17% of a Standard worker
//! (`perf annotate`). Here a bucket is five fingerprints and their five
//! expiries in 64 bytes, and probing goes bucket by bucket.
//!
//! Fingerprint 0 marks an empty slot, so a fingerprint of 0 is stored as
//! one. Slots are never emptied except by [`purge`](FingerprintTable::purge),
//! which rebuilds the table; an expired slot is reused in place. So a probe
//! chain only ever grows until a purge, and a lookup may stop at the first
//! bucket with an empty slot: nothing it looks for can lie beyond.

/// Fingerprints per bucket: five, with their expiries, fill 64 bytes.
const SLOTS: usize = 5;

/// One bucket: words 0..5 are fingerprints (0 = empty), words 5..8 hold
/// the five 32-bit expiries, two per word. A plain array of `u64`, so that
/// a zeroed table is allocated zeroed (by the OS, page by page) instead of
/// written.
type Bucket = [u64; WORDS];

/// Words per bucket.
const WORDS: usize = 8;

/// What [`FingerprintTable::record`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The fingerprint was there and live: nothing changed.
    Live,
    /// Now recorded until the given expiry.
    Done,
    /// Not recorded: the table holds `capacity` entries and none on this
    /// fingerprint's probe chain has expired. [`purge`] and try again.
    ///
    /// [`purge`]: FingerprintTable::purge
    Full,
}

/// Where a table's buckets lie in memory, so that a bucket can be asked for
/// ahead of a check without the table's lock: the buckets never move (a
/// purge rewrites them in place).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BucketLines {
    first: usize,
    mask: usize,
}

impl BucketLines {
    /// The address of the bucket where `fingerprint`'s probe chain starts.
    pub(crate) fn of(self, fingerprint: u64) -> usize {
        let at = fingerprint.max(1) as usize & self.mask;
        self.first
            .wrapping_add(at.wrapping_mul(std::mem::size_of::<Bucket>()))
    }
}

/// The huge page size on x86-64 and the usual arm64 configuration.
const HUGE_PAGE: usize = 2 << 20;

/// A bounded set of fingerprints, each remembered until its expiry.
pub(crate) struct FingerprintTable {
    /// The buckets, `count` of them (a power of two) from word `offset`.
    /// The words to spare let them start on a cache line whatever the
    /// allocator's alignment (glibc's malloc puts a 16-byte header before
    /// a large block), so that a bucket is one line, and a table of 2 MiB
    /// or more on a huge page boundary. The spare words are never touched,
    /// so never backed by memory.
    storage: Box<[u64]>,
    offset: usize,
    count: usize,
    /// Slots in use, live or expired.
    len: usize,
    capacity: usize,
}

impl FingerprintTable {
    /// A table for `capacity` fingerprints, at most 80% of its slots.
    pub(crate) fn with_capacity(capacity: usize) -> FingerprintTable {
        let count = capacity.div_ceil(4).max(1).next_power_of_two();
        let words = count * WORDS;
        let align = if words * 8 >= HUGE_PAGE {
            HUGE_PAGE
        } else {
            std::mem::size_of::<Bucket>()
        };
        let mut storage = vec![0u64; words + align / 8].into_boxed_slice();
        let address = storage.as_ptr() as usize;
        // Words are 8-byte aligned, so the distance is whole words.
        let offset = (address.next_multiple_of(align) - address) / 8;
        if let Some(buckets) = storage.get_mut(offset..offset + words) {
            advise_huge_pages(buckets);
            map_now(buckets);
        }
        FingerprintTable {
            storage,
            offset,
            count,
            len: 0,
            capacity,
        }
    }

    /// The buckets' words in `storage`.
    fn bucket_words(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.count * WORDS
    }

    fn buckets(&self) -> &[Bucket] {
        self.storage
            .get(self.bucket_words())
            .unwrap_or_default()
            .as_chunks::<WORDS>()
            .0
    }

    fn buckets_mut(&mut self) -> &mut [Bucket] {
        let range = self.bucket_words();
        self.storage
            .get_mut(range)
            .unwrap_or_default()
            .as_chunks_mut::<WORDS>()
            .0
    }

    /// Where the buckets lie (see [`BucketLines`]).
    pub(crate) fn lines(&self) -> BucketLines {
        let buckets = self.buckets();
        BucketLines {
            first: buckets.as_ptr() as usize,
            mask: buckets.len().wrapping_sub(1),
        }
    }

    /// Slots in use, expired ones included until purged or reused.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many fingerprints it may hold.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records `fingerprint` until `expiry` (seconds), unless it is there
    /// and live at `now`.
    pub(crate) fn record(&mut self, fingerprint: u64, expiry: u32, now: u32) -> Recorded {
        let fingerprint = fingerprint.max(1);
        let capacity = self.capacity;
        let len = self.len;
        let buckets = self.buckets_mut();
        let mask = buckets.len().wrapping_sub(1);
        let start = fingerprint as usize & mask;
        // The first expired slot on the chain, else the first empty one.
        let mut expired: Option<(usize, usize)> = None;
        let mut empty: Option<(usize, usize)> = None;
        for probe in 0..buckets.len() {
            let at = (start + probe) & mask;
            let Some(bucket) = buckets.get_mut(at) else {
                break;
            };
            for slot in 0..SLOTS {
                match bucket.get(slot).copied() {
                    Some(0) => {
                        empty.get_or_insert((at, slot));
                    }
                    Some(stored) if stored == fingerprint => {
                        if expiry_of(bucket, slot) > now {
                            return Recorded::Live;
                        }
                        set_expiry(bucket, slot, expiry);
                        return Recorded::Done;
                    }
                    Some(_) if expiry_of(bucket, slot) <= now => {
                        expired.get_or_insert((at, slot));
                    }
                    _ => {}
                }
            }
            if empty.is_some() {
                // The chain ends here: the fingerprint is not in the table.
                break;
            }
        }
        let (at, slot, grows) = match (expired, empty) {
            (Some((at, slot)), _) => (at, slot, false),
            (None, Some((at, slot))) if len < capacity => (at, slot, true),
            _ => return Recorded::Full,
        };
        if let Some(bucket) = buckets.get_mut(at)
            && let Some(word) = bucket.get_mut(slot)
        {
            *word = fingerprint;
            set_expiry(bucket, slot, expiry);
        }
        if grows {
            self.len += 1;
        }
        Recorded::Done
    }

    /// Forgets every fingerprint expired at `now` (rebuilding the table, so
    /// that probe chains shrink too). Returns the earliest expiry left, 0 if
    /// none: before then a purge would free nothing.
    pub(crate) fn purge(&mut self, now: u32) -> u32 {
        let mut live = Vec::with_capacity(self.len);
        for bucket in self.buckets() {
            for slot in 0..SLOTS {
                if let Some(&fingerprint) = bucket.get(slot)
                    && fingerprint != 0
                    && expiry_of(bucket, slot) > now
                {
                    live.push((fingerprint, expiry_of(bucket, slot)));
                }
            }
        }
        self.buckets_mut()
            .iter_mut()
            .for_each(|bucket| *bucket = [0; WORDS]);
        self.len = 0;
        for &(fingerprint, expiry) in &live {
            // Fewer than before, into an empty table: always room.
            let _ = self.record(fingerprint, expiry, now);
        }
        live.iter().map(|&(_, expiry)| expiry).min().unwrap_or(0)
    }
}

/// Asks the kernel to back the table's whole 2 MiB stretches with huge
/// pages (transparent huge pages, in `madvise` mode on most systems).
///
/// Lookups land anywhere in the table (64 MiB by default): with 4 KiB pages
/// each is a TLB miss as well as a cache miss. With 2 MiB pages the table
/// is 32 TLB entries. Where the kernel cannot (THP off, or no huge page
/// free), the table works as before, on small pages.
fn advise_huge_pages(words: &mut [u64]) {
    let bytes = std::mem::size_of_val(words);
    let base = words.as_mut_ptr().cast::<u8>();
    let address = base as usize;
    let first = address.next_multiple_of(HUGE_PAGE);
    let end = address.saturating_add(bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return;
    }
    let start = base
        .wrapping_add(first - address)
        .cast::<std::ffi::c_void>();
    #[allow(unsafe_code)]
    // SAFETY: `start..start + (end - first)` lies inside `words`, which this
    // table owns alone, and is page-aligned as madvise requires.
    // MADV_HUGEPAGE changes only how the kernel backs those pages, never
    // their contents or whether they may be accessed.
    let _ = unsafe { rustix::mm::madvise(start, end - first, rustix::mm::Advice::LinuxHugepage) };
}

/// Writes a word on each 4 KiB page, so that the OS maps the whole table
/// now (on 2 MiB pages where [`advise_huge_pages`] got them) rather than
/// on the first message to touch each page. A zeroed table comes
/// unmapped: on 4 KiB pages, a page's first check took two page faults
/// (the read maps the shared zero page, the write copies it), and on 2
/// MiB pages the first touch of each stalled a message 0.5 to 9 ms.
/// `black_box` keeps the compiler from proving the stores redundant on
/// memory it knows is zero.
fn map_now(words: &mut [u64]) {
    const WORDS_PER_PAGE: usize = 4096 / 8;
    for word in words.iter_mut().step_by(WORDS_PER_PAGE) {
        *word = std::hint::black_box(0);
    }
}

fn expiry_of(bucket: &Bucket, slot: usize) -> u32 {
    let word = bucket.get(SLOTS + slot / 2).copied().unwrap_or(0);
    (word >> (32 * (slot % 2))) as u32
}

fn set_expiry(bucket: &mut Bucket, slot: usize, expiry: u32) {
    if let Some(word) = bucket.get_mut(SLOTS + slot / 2) {
        let shift = 32 * (slot % 2);
        *word = (*word & !(u64::from(u32::MAX) << shift)) | (u64::from(expiry) << shift);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn buckets_start_on_a_cache_line_whatever_the_allocator() {
        for capacity in [1, 100, 4096, 30_000] {
            let table = FingerprintTable::with_capacity(capacity);
            let start = table.buckets().as_ptr() as usize;
            assert!(start.is_multiple_of(64), "{capacity}: {start:#x}");
            let count = capacity.div_ceil(4).next_power_of_two();
            assert_eq!(table.buckets().len(), count);
        }
    }

    #[test]
    fn the_line_asked_for_ahead_is_the_bucket_a_record_lands_in() {
        let mut table = FingerprintTable::with_capacity(4096);
        let lines = table.lines();
        // (0 is stored as 1.)
        for fingerprint in [0, 7, 1 << 40, u64::MAX, 0x9e37_79b9_7f4a_7c15] {
            assert_eq!(table.record(fingerprint, 10, 0), Recorded::Done);
            let bucket = table
                .buckets()
                .iter()
                .find(|bucket| bucket[..SLOTS].contains(&fingerprint.max(1)))
                .unwrap();
            assert_eq!(lines.of(fingerprint), bucket.as_ptr() as usize);
        }
        // A purge rewrites the buckets in place: the addresses hold.
        table.purge(20);
        assert_eq!(table.lines().of(7), lines.of(7));
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert!(SLOTS + SLOTS.div_ceil(2) <= 8);
    }

    #[test]
    fn a_live_fingerprint_is_found_an_expired_one_is_renewed() {
        let mut table = FingerprintTable::with_capacity(16);
        assert_eq!(table.record(7, 10, 0), Recorded::Done);
        assert_eq!(table.record(7, 20, 9), Recorded::Live);
        assert_eq!(table.record(7, 30, 10), Recorded::Done);
        assert_eq!(table.record(7, 40, 29), Recorded::Live);
        assert_eq!(table.len(), 1);
        // 0 is stored as 1.
        assert_eq!(table.record(0, 10, 0), Recorded::Done);
        assert_eq!(table.record(1, 10, 0), Recorded::Live);
    }

    #[test]
    fn it_agrees_with_a_hash_map_under_churn() {
        // Fingerprints that share low bits crowd a few buckets, so chains
        // cross buckets, expired slots get reused mid-chain and purges
        // rebuild; a HashMap of the same operations is the reference.
        let capacity = 200;
        let mut table = FingerprintTable::with_capacity(capacity);
        let mut reference: HashMap<u64, u32> = HashMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let fingerprint = (state % 400).max(1) << 3 | (state >> 60) & 1;
            let now = step / 100;
            let expiry = now + 1 + (state >> 40) as u32 % 20;
            let live = reference.get(&fingerprint).is_some_and(|&e| e > now);
            let expected = if live {
                Recorded::Live
            } else {
                let used = reference.values().filter(|&&e| e > now).count();
                if reference.contains_key(&fingerprint) || used < capacity {
                    Recorded::Done
                } else {
                    Recorded::Full
                }
            };
            let mut got = table.record(fingerprint, expiry, now);
            if got == Recorded::Full && expected == Recorded::Done {
                // Full of slots, some expired elsewhere: what the guard does.
                table.purge(now);
                got = table.record(fingerprint, expiry, now);
            }
            assert_eq!(got, expected, "step {step}");
            if got == Recorded::Done {
                reference.insert(fingerprint, expiry);
            }
            reference.retain(|_, e| *e > now);
            assert!(table.len() <= capacity);
        }
    }

    #[test]
    fn purge_keeps_the_live_and_reports_the_earliest_expiry() {
        let mut table = FingerprintTable::with_capacity(8);
        for (fingerprint, expiry) in [(1, 5), (2, 9), (3, 7), (4, 3)] {
            assert_eq!(table.record(fingerprint, expiry, 0), Recorded::Done);
        }
        assert_eq!(table.purge(4), 5);
        assert_eq!(table.len(), 3);
        assert_eq!(table.record(2, 20, 4), Recorded::Live);
        assert_eq!(table.record(4, 20, 4), Recorded::Done);
        assert_eq!(table.purge(100), 0);
        assert_eq!(table.len(), 0);
    }
}
