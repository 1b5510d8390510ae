//! [`RevocationList`]: token ids (`jti`) refused although their tokens
//! verify, and [`SharedRevocations`]: the list behind one atomic swap, so
//! that revoking takes effect at once without stopping readers.

use std::collections::HashSet;
use std::fmt;

use crate::sync::{Arc, CellCache, Snapshot, SwapCell};

/// A set of revoked token ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    ids: HashSet<Box<str>>,
}

impl RevocationList {
    /// The list of `ids`.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(ids: I) -> RevocationList {
        RevocationList {
            ids: ids.into_iter().map(|id| Box::from(id.as_ref())).collect(),
        }
    }

    /// Whether `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        // Most deployments revoke nothing: skip the hash then.
        !self.ids.is_empty() && self.ids.contains(jti)
    }

    /// How many ids are revoked.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The revocation list shared by every worker.
pub struct SharedRevocations {
    current: SwapCell<RevocationList>,
}

impl fmt::Debug for SharedRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRevocations")
            .field("len", &self.load().len())
            .finish()
    }
}

/// A reader's view of the revocation list.
pub struct RevocationSnapshot(Snapshot<RevocationList>);

impl std::ops::Deref for RevocationSnapshot {
    type Target = RevocationList;
    fn deref(&self) -> &RevocationList {
        &self.0
    }
}

impl fmt::Debug for RevocationSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl SharedRevocations {
    /// Shares `list`.
    pub fn new(list: RevocationList) -> SharedRevocations {
        SharedRevocations {
            current: SwapCell::new(Arc::new(list)),
        }
    }

    /// The current list.
    pub fn load(&self) -> RevocationSnapshot {
        RevocationSnapshot(self.current.load())
    }

    /// A cache of the list for one worker, which reads it for every
    /// message (see [`CellCache`]).
    pub(crate) fn cache(&self) -> CellCache<RevocationList> {
        self.current.cache()
    }

    /// Replaces the list (a reload).
    pub fn replace(&self, list: RevocationList) {
        let list = Arc::new(list);
        self.current.update(|_| Arc::clone(&list));
    }

    /// Adds `jti` to the list; concurrent revocations are all kept.
    pub fn revoke(&self, jti: &str) {
        self.current.update(|current| {
            let mut next = (**current).clone();
            next.ids.insert(Box::from(jti));
            Arc::new(next)
        });
    }
}
