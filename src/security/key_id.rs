//! A key's id as a reply carries it from admission to protection.

// Public for the tests (`security::test_support`, feature test-support);
// the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;

/// A key id, held inline up to 24 bytes (every id of the dev setup, and
/// most configs'), on the heap beyond: naming the keys that protect a
/// reply costs no allocation per message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyId(CompactString);

impl KeyId {
    /// The id `id`.
    pub fn new(id: &str) -> KeyId {
        KeyId(CompactString::new(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for KeyId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for KeyId {
    fn from(id: &str) -> KeyId {
        KeyId::new(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_read_back_as_given() {
        for id in [
            "",
            "dev-sign-1",
            "a-key-id-of-exactly-24-b",
            &"k".repeat(200),
        ] {
            let key = KeyId::from(id);
            assert_eq!(key.as_str(), id);
            assert_eq!(&*key, id);
            assert_eq!(key.to_string(), id);
            assert_eq!(key.clone(), key);
        }
        assert!(!KeyId::new("dev-sign-1").0.is_heap_allocated());
        assert!(KeyId::new(&"k".repeat(25)).0.is_heap_allocated());
    }
}
