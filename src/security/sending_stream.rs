//! [`ReplayStream`]: a sender's replay stream (docs/protocol.md section 7a):
//! a name no other sender of its principal uses, and a counter its messages
//! take their numbers from.

use ring::rand::{SecureRandom, SystemRandom};

use super::b64u;
use crate::error::{Code, Error};
use crate::message::{MAX_SEQ, is_valid_stream};
use crate::sync::{Arc, AtomicU64, Ordering};

/// A sender's replay stream. Clones share the name and the counter, so
/// every clone's messages get distinct, increasing numbers: one stream per
/// client (or per connection), shared by the threads that send on it.
#[derive(Clone, Debug)]
pub struct ReplayStream {
    name: Arc<str>,
    next: Arc<AtomicU64>,
}

impl ReplayStream {
    /// A stream of a fresh random name: 128 bits in base64url (22
    /// characters), so that no other sender picks it.
    pub fn new() -> Result<ReplayStream, Error> {
        let mut random = [0u8; 16];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| Error::new(Code::InternalError, "no randomness for a stream name"))?;
        ReplayStream::named(&b64u::encode(&random))
    }

    /// A stream named `name` (1 to 64 characters of `[A-Za-z0-9_-]`), its
    /// numbers from 1.
    pub fn named(name: &str) -> Result<ReplayStream, Error> {
        if !is_valid_stream(name) {
            return Err(Error::new(
                Code::ValidationFailed,
                "a stream name is 1 to 64 characters of [A-Za-z0-9_-]",
            ));
        }
        Ok(ReplayStream {
            name: Arc::from(name),
            next: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next number. `None` once the stream's 2^53 - 1 numbers are used
    /// up (a sender then opens a new stream).
    pub fn next_seq(&self) -> Option<u64> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        (seq <= MAX_SEQ).then_some(seq)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_increasing_counter_and_names_are_checked() {
        let stream = ReplayStream::new().unwrap();
        assert_eq!(stream.name().len(), 22);
        assert!(is_valid_stream(stream.name()));
        assert_ne!(stream.name(), ReplayStream::new().unwrap().name());
        let other = stream.clone();
        assert_eq!(stream.next_seq(), Some(1));
        assert_eq!(other.next_seq(), Some(2));
        assert_eq!(stream.next_seq(), Some(3));
        assert!(ReplayStream::named("a.b").is_err());
        let last = ReplayStream::named("s").unwrap();
        last.next.store(MAX_SEQ, Ordering::Relaxed);
        assert_eq!(last.next_seq(), Some(MAX_SEQ));
        assert_eq!(last.next_seq(), None);
    }
}
