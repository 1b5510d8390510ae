//! A bounded table of one record per principal, shared by the workers:
//! each principal's share of the replay memory, each principal's rate
//! limit. A principal's name is hashed with a key of this run (an attacker
//! who picks names cannot aim at one slot); a full table forgets the
//! records that hold nothing and that no worker holds, and refuses a new
//! principal if none can go.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use crate::error::{Code, Error};
use crate::sync::{Arc, Mutex};

/// Records by principal, at most `capacity`.
#[derive(Debug)]
pub(crate) struct PrincipalTable<T> {
    records: Mutex<HashMap<u64, Arc<T>>>,
    hasher: RandomState,
    capacity: usize,
    /// The refusal when the table is full (says which table).
    full: &'static str,
}

impl<T: Default> PrincipalTable<T> {
    /// A table of at most `capacity` records, refusing with `full` past it.
    pub(crate) fn new(capacity: usize, full: &'static str) -> PrincipalTable<T> {
        PrincipalTable {
            records: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
            capacity,
            full,
        }
    }

    /// The record of `principal`, made if new. When the table is full,
    /// records that `holds_nothing` and no worker holds are forgotten
    /// first; if none can be, `resource_exhausted`.
    pub(crate) fn record(
        &self,
        principal: &str,
        holds_nothing: impl Fn(&T) -> bool,
    ) -> Result<Arc<T>, Error> {
        let key = self.hasher.hash_one(principal);
        let mut records = self.records.lock();
        if let Some(record) = records.get(&key) {
            return Ok(Arc::clone(record));
        }
        if records.len() >= self.capacity {
            records.retain(|_, record| Arc::strong_count(record) > 1 || !holds_nothing(record));
            if records.len() >= self.capacity {
                return Err(Error::new(Code::ResourceExhausted, self.full));
            }
        }
        let record = Arc::new(T::default());
        records.insert(key, Arc::clone(&record));
        Ok(record)
    }

    /// How many records the table holds.
    pub(crate) fn len(&self) -> usize {
        self.records.lock().len()
    }
}
