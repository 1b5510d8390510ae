//! One request through the broker, from a program without a runtime of
//! its own (`mcp-engine send --nats`).

use std::time::Duration;

use bytes::Bytes;

use super::binding;
use crate::codec::Codec;
use crate::error::{Code, Error};

/// Sends `envelope` (in `codec`) to `subject` through the broker at `url`
/// and waits up to `timeout` for the reply: its codec and envelope. The
/// request carries its codec byte (docs/scaling.md). Blocks the calling
/// thread on a runtime of its own; not for use inside an async runtime.
///
/// Fails with `network_error` if the broker cannot be reached, `timeout`
/// if no reply comes (or no engine serves the subject), and
/// `invalid_format` if the reply has no codec byte.
pub fn request(
    url: &str,
    subject: &str,
    codec: Codec,
    envelope: &[u8],
    timeout: Duration,
) -> Result<(Codec, Vec<u8>), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Code::InternalError, format!("runtime: {e}")))?;
    let body = binding::reply_with_codec_byte(codec, envelope);
    let reply = runtime.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .connect(url)
            .await
            .map_err(|e| Error::new(Code::NetworkError, format!("NATS at {url}: {e}")))?;
        let asked = async_nats::Request::new()
            .payload(Bytes::from(body))
            .timeout(Some(timeout));
        client
            .send_request(subject.to_owned(), asked)
            .await
            .map_err(|e| {
                let code = match e.kind() {
                    async_nats::RequestErrorKind::TimedOut
                    | async_nats::RequestErrorKind::NoResponders => Code::Timeout,
                    async_nats::RequestErrorKind::MaxPayloadExceeded => Code::MessageTooLarge,
                    async_nats::RequestErrorKind::InvalidSubject => Code::ConfigurationError,
                    async_nats::RequestErrorKind::Other => Code::NetworkError,
                };
                Error::new(code, format!("NATS request to {subject}: {e}"))
            })
    })?;
    // Framed as the request was (its codec byte), or bare JSON: the
    // ingress's own refusal of a body it could not read.
    let header = binding::codec_header(reply.headers.as_ref());
    let (codec, envelope) = binding::read_envelope(header, &reply.payload)?;
    Ok((codec, envelope.to_vec()))
}
