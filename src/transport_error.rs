//! Errors a transport answers itself, before a message reaches the engine:
//! a frame over the size limit, a zero length, an unknown codec byte (the
//! server); a body without a codec, a full in-flight window (the NATS
//! ingress). Always in the JSON codec (the request's codec is unknown or
//! untrusted); with a correlation id only where the body was read and has
//! a valid one (see [`Decoder::readable_id`]).
//!
//! [`Decoder::readable_id`]: crate::codec::Decoder::readable_id

use ring::rand::{SecureRandom, SystemRandom};

use crate::codec::{Codec, json};
use crate::error::Error;
use crate::frame::write_frame;
use crate::message::Timestamp;

/// Writes transport Errors with fresh ids `t-<boot>-<n>`.
#[derive(Debug)]
pub(crate) struct TransportErrors {
    prefix: String,
    next: u64,
    body: Vec<u8>,
}

impl TransportErrors {
    pub(crate) fn new() -> TransportErrors {
        let mut boot = [0u8; 4];
        // Without randomness the ids are still unique within this run.
        let _ = SystemRandom::new().fill(&mut boot);
        TransportErrors {
            prefix: format!("t-{:08x}-", u32::from_be_bytes(boot)),
            next: 0,
            body: Vec::new(),
        }
    }

    /// Appends the frame of the Error envelope for `error` to `out`, about
    /// a frame whose body was never read (no correlation id).
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, error: &Error) {
        let body = self.envelope(error, None);
        // An Error envelope is a few hundred bytes: it always fits a frame.
        let _ = write_frame(out, Codec::Json, body);
    }

    /// The Error envelope for `error` about message `correlation_id` (if
    /// known), in JSON, valid until the next call.
    pub(crate) fn envelope(&mut self, error: &Error, correlation_id: Option<&str>) -> &[u8] {
        self.next += 1;
        let id = format!("{}{}", self.prefix, self.next);
        let envelope = error.to_envelope(id, correlation_id, Timestamp::now());
        self.body.clear();
        json::encode(&envelope, &mut self.body);
        &self.body
    }
}
