//! [`ValueTexts`]: parsing the JSON text an envelope carries for `payload`
//! and `metadata`, as the binary form and the owned [`Message`] hold them.
//!
//! [`Message`]: crate::Message

use simd_json::Node;

use crate::error::Error;
use crate::json::{Parser, TapeLease};

/// What parsing the two texts needs, borrowed from its owner (a decoder, a
/// canonicalizer) so that nothing is allocated once warm.
pub(crate) struct ValueTexts<'a> {
    pub(crate) parser: &'a mut Parser,
    /// Holds the payload and metadata text while their tapes are alive.
    pub(crate) text: &'a mut Vec<u8>,
    /// A second tape for the metadata, merged into the first.
    pub(crate) metadata_tape: &'a mut Vec<Node<'static>>,
}

impl<'a> ValueTexts<'a> {
    /// Parses `payload` into `tape` at position 0 and, if given, `metadata`
    /// after it; returns the metadata's position. A text that is not valid
    /// JSON is refused with `invalid_format`, naming its field.
    ///
    /// Plain texts, nearly all, are read where they stand; otherwise both
    /// are copied and parsed.
    pub(crate) fn parse(
        self,
        payload: &'a [u8],
        metadata: Option<&'a [u8]>,
        tape: &mut TapeLease<'a>,
    ) -> Result<Option<usize>, Error> {
        let ValueTexts {
            parser,
            text,
            metadata_tape,
        } = self;
        let nodes = &mut tape.tape.0;
        nodes.clear();
        if parser.read_plain(payload, nodes) {
            let at = nodes.len();
            match metadata {
                None => return Ok(None),
                Some(metadata) if parser.read_plain(metadata, nodes) => return Ok(Some(at)),
                Some(_) => nodes.clear(),
            }
        }
        text.clear();
        text.extend_from_slice(payload);
        text.extend_from_slice(metadata.unwrap_or_default());
        let (payload_text, metadata_text) = text.split_at_mut(payload.len());
        parser
            .parse(payload_text, &mut tape.tape)
            .map_err(|e| in_field(e, "payload"))?;
        if metadata.is_none() {
            return Ok(None);
        }
        let mut metadata_lease = TapeLease::take(metadata_tape);
        parser
            .parse(metadata_text, &mut metadata_lease.tape)
            .map_err(|e| in_field(e, "metadata"))?;
        let at = tape.tape.0.len();
        tape.tape.0.extend_from_slice(&metadata_lease.tape.0);
        Ok(Some(at))
    }
}

/// Names the field whose JSON text failed to parse.
fn in_field(error: Error, field: &str) -> Error {
    Error::new(
        error.code(),
        format!("field `{field}`: {}", error.message()),
    )
}
