//! Collapsing identical refusals: the first of an interval is written at
//! once; the others from the same peer with the same code, principal and
//! command are counted, and written as one line when the interval ends.
//! So a flood from one peer costs two lines an interval, whatever its
//! size.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use super::event::{AuditEvent, AuditKind};
use crate::error::Code;

/// Distinct refusals one interval remembers; past it, a new one is dropped
/// (and counted) until the interval ends.
pub const MAX_DISTINCT_PER_INTERVAL: usize = 4096;

type Key = (
    Option<IpAddr>,
    Option<Code>,
    Option<Box<str>>,
    Option<Box<str>>,
);

/// The repeats of one refusal in this interval.
#[derive(Debug)]
struct Repeats {
    /// How many came after the one written.
    count: u64,
    first_at: i128,
    latest: Option<AuditEvent>,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// Its line was appended.
    Written,
    /// Counted into the interval's line for its kind.
    Collapsed,
    /// Too many distinct refusals this interval: dropped.
    Dropped,
}

/// The interval's refusals.
#[derive(Debug)]
pub struct Collapser {
    interval_ns: i128,
    ends_at: Option<i128>,
    seen: HashMap<Key, Repeats>,
}

impl Collapser {
    /// Collapsing over `interval`.
    pub fn new(interval: Duration) -> Collapser {
        Collapser {
            interval_ns: interval.as_nanos().max(1) as i128,
            ends_at: None,
            seen: HashMap::new(),
        }
    }

    /// Takes `event` at `now`, appending its line to `out` when it is
    /// written now.
    pub fn take(&mut self, event: AuditEvent, now: i128, out: &mut Vec<u8>) -> Taken {
        if event.kind != AuditKind::Refused {
            event.write_line(out, 1, None);
            return Taken::Written;
        }
        self.ends_at.get_or_insert(now + self.interval_ns);
        let key = (
            event.peer,
            event.code,
            event.principal.clone(),
            event.command.clone(),
        );
        let distinct = self.seen.len();
        match self.seen.entry(key) {
            Entry::Occupied(mut seen) => {
                let repeats = seen.get_mut();
                if repeats.count == 0 {
                    repeats.first_at = event.at;
                }
                repeats.count += 1;
                repeats.latest = Some(event);
                Taken::Collapsed
            }
            Entry::Vacant(_) if distinct >= MAX_DISTINCT_PER_INTERVAL => Taken::Dropped,
            Entry::Vacant(vacant) => {
                event.write_line(out, 1, None);
                vacant.insert(Repeats {
                    count: 0,
                    first_at: event.at,
                    latest: None,
                });
                Taken::Written
            }
        }
    }

    /// Ends the interval if `now` is past it: appends one line per refusal
    /// that repeated, and returns how many.
    pub fn tick(&mut self, now: i128, out: &mut Vec<u8>) -> u64 {
        match self.ends_at {
            Some(ends_at) if now >= ends_at => self.flush(out),
            _ => 0,
        }
    }

    /// Ends the interval now (at shutdown): the repeats' lines.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> u64 {
        let mut lines = 0;
        for (_, repeats) in self.seen.drain() {
            if let Some(mut latest) = repeats.latest {
                let last_at = latest.at;
                latest.at = repeats.first_at;
                latest.write_line(out, repeats.count, Some(last_at));
                lines += 1;
            }
        }
        self.ends_at = None;
        lines
    }

    /// When the interval ends, if one is open.
    pub fn ends_at(&self) -> Option<i128> {
        self.ends_at
    }
}
