//! Codecs: message bodies to validated views and back (docs/protocol.md sections
//! 3 and 8), and the canonical form that signatures cover (section 5).
//!
//! [`Decoder`] turns a frame body, JSON or binary, into a [`MessageView`]
//! after every envelope rule, or refuses it with the protocol's code. Security
//! checks (tokens, signatures, decryption) are not here: they need keys and
//! belong to the pipeline's stages.
//!
//! [`MessageView`]: crate::MessageView

pub mod binary;
mod canonical;
// Named for the type it holds, as the other files here are.
#[allow(clippy::module_inception)]
mod codec;
mod decoder;
pub mod json;
mod response;
mod rules;
mod value_text;

pub use binary::{AlignedBytes, BINARY_ALIGNMENT};
pub use canonical::Canonicalizer;
pub use codec::Codec;
pub use decoder::{Decoder, MAX_DEPTH};
pub(crate) use response::{ResponseParts, SealedPayload, encode_response};
pub use rules::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_REPLAY_WINDOW_SECS, Limits, check_plain_payload,
};
pub(crate) use rules::{check_payload_shape, check_version_form, check_version_major};
