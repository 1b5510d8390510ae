//! JSON values: strict parsing, borrowed reading, owned text, compact writing.
//!
//! This module knows JSON, not the envelope: the envelope rules live in
//! [`codec`](crate::codec). Its parser refuses what the protocol refuses in any
//! JSON text (invalid UTF-8, repeated keys, excess nesting), so a value that
//! reaches the rest of the engine is already well-formed.

mod parser;
mod plain;
mod raw;
mod repeated_keys;
mod scan;
mod serialize;
mod tape_lease;
mod value;
pub(crate) mod write;

pub(crate) use parser::{Parser, quoted_prefix};
pub(crate) use plain::PlainCursor;
pub use raw::{MAX_VALUE_DEPTH, RawJson};
pub(crate) use tape_lease::TapeLease;
pub use value::{Elements, Entries, JsonKind, JsonNumber, JsonRef};
pub(crate) use value::{members, span, str_at};
