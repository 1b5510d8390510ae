//! `ErrorHandler` of docs/seed-specification.md: a bounded history of the errors the engine
//! sent, and recovery hooks run per error code.
//!
//! The history is sharded by thread (each worker, the timer, submitters):
//! a thread appends to its own shard, so a flood of bad input on one
//! worker does not make the others wait. Each shard keeps the newest
//! `max_history / shards` records.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_utils::CachePadded;

use crate::error::{Code, Error};
use crate::sync::{Arc, Mutex};

use super::concurrency::IdBytes;

/// One error the engine sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The error (its full message, which the wire may not carry).
    pub error: Error,
    /// The id of the message it answered, when known.
    pub correlation_id: Option<String>,
    /// When, in unix nanoseconds.
    pub at: i128,
}

/// A recovery hook: runs on the engine thread that sent the error, so it
/// must be quick (set a flag, send on a channel). A panic in it is caught.
pub type ErrorHook = Arc<dyn Fn(&ErrorRecord) + Send + Sync>;

struct Entry {
    error: Error,
    correlation: Option<IdBytes>,
    at: i128,
}

/// The history and the hooks.
pub(crate) struct ErrorLog {
    shards: Box<[CachePadded<Mutex<VecDeque<Entry>>>]>,
    per_shard: usize,
    hooks: HashMap<Code, Vec<ErrorHook>>,
}

impl std::fmt::Debug for ErrorLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorLog")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .finish_non_exhaustive()
    }
}

impl ErrorLog {
    pub(crate) fn new(
        shards: usize,
        max_history: usize,
        hooks: HashMap<Code, Vec<ErrorHook>>,
    ) -> ErrorLog {
        let shards = shards.max(1);
        ErrorLog {
            shards: (0..shards)
                .map(|_| CachePadded::new(Mutex::new(VecDeque::new())))
                .collect(),
            per_shard: max_history.div_ceil(shards),
            hooks,
        }
    }

    /// Records an error sent by thread `slot`, and runs its code's hooks.
    pub(crate) fn record(
        &self,
        slot: usize,
        error: &Error,
        correlation_id: Option<&str>,
        at: i128,
    ) {
        if self.per_shard > 0
            && let Some(shard) = self.shards.get(slot.min(self.shards.len() - 1))
        {
            let mut history = shard.lock();
            if history.len() >= self.per_shard {
                history.pop_front();
            }
            history.push_back(Entry {
                error: error.clone(),
                correlation: correlation_id.and_then(IdBytes::new),
                at,
            });
        }
        if let Some(hooks) = self.hooks.get(&error.code()) {
            let record = ErrorRecord {
                error: error.clone(),
                correlation_id: correlation_id.map(str::to_owned),
                at,
            };
            for hook in hooks {
                let _ = catch_unwind(AssertUnwindSafe(|| hook(&record)));
            }
        }
    }

    /// The history, oldest first.
    pub(crate) fn recent(&self) -> Vec<ErrorRecord> {
        let mut all: Vec<ErrorRecord> = self
            .shards
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .iter()
                    .map(|entry| ErrorRecord {
                        error: entry.error.clone(),
                        correlation_id: entry.correlation.as_ref().map(|id| id.as_str().to_owned()),
                        at: entry.at,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(|record| record.at);
        all
    }
}
