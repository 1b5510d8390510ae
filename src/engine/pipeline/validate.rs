//! Stage validate: a frame body to a [`MessageView`] that meets every
//! envelope rule (docs/protocol.md sections 3 and 8), or the protocol's
//! error. The rules themselves are the codec's (`codec/rules.rs`).

use crate::codec::{Codec, Decoder};
use crate::error::Error;
use crate::message::MessageView;

/// Decodes `body` and checks the envelope, its timestamp against
/// `wall_now`.
#[inline]
pub(crate) fn validate<'a>(
    decoder: &'a mut Decoder,
    codec: Codec,
    body: &'a [u8],
    wall_now: i128,
) -> Result<MessageView<'a>, Error> {
    decoder.decode(codec, body, wall_now)
}

/// The id of a body that `validate` refused, if it can still be read:
/// the Error then names the message it answers (docs/protocol.md
/// section 7).
pub(crate) fn id_of_refused(decoder: &mut Decoder, codec: Codec, body: &[u8]) -> Option<String> {
    decoder.readable_id(codec, body)
}
