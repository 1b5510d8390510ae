//! The message model (docs/protocol.md sections 1 and 3).
//!
//! Two forms of one envelope: [`Message`], owned, for building and keeping
//! messages; [`MessageView`], borrowed from the buffer a message arrived in,
//! for the pipeline to read without copying. Decoding and the envelope rules
//! live in [`codec`](crate::codec); this module holds the types.

mod envelope;
mod error_envelope;
mod field;
mod id;
mod kind;
mod level;
mod named_payload;
mod replay_mark;
mod security;
pub(crate) mod timestamp;
mod view;

pub use envelope::{Message, PROTOCOL_VERSION};
pub use field::Field;
pub use id::{MAX_ID_LEN, is_valid_id};
pub use kind::{MessageType, TypeKey};
pub use level::SecurityLevel;
pub(crate) use named_payload::named_payload;
pub use replay_mark::{MAX_SEQ, MAX_STREAM_LEN, ReplayMark, is_valid_stream};
pub use security::{ENCRYPTION_ALGORITHM, EncryptionInfo, SecurityMetadata};
pub use timestamp::{Timestamp, unix_nanos_now};
pub use view::MessageView;
