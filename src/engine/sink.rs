//! Where replies go: sinks the embedding program registers once, named by a
//! [`SinkId`] on every submission together with a tag of the caller's
//! choosing (a connection, a request slot).
//!
//! A submission names its sink by number, not by pointer, so that the
//! engine's bookkeeping of a running call is a handful of integers that
//! another thread can read without a lock (see `concurrency/call_watch.rs`).

use crate::codec::Codec;
use crate::error::Code;
use crate::sync::{Arc, SwapCell};

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A Command answered with a Response.
    Response,
    /// A message refused or failed, answered with an Error of this code.
    Error(Code),
    /// An Event delivered to this many handlers (answered only when it asked
    /// for an acknowledgement).
    Delivered(u32),
    /// A Response or Error the engine received: it completed a pending
    /// command, or matched none and was dropped. Never answered.
    Absorbed,
    /// Not a reply: a Command the engine sends to the peer (see
    /// [`Engine::send_command`](super::Engine::send_command)).
    Sent,
}

/// One reply, lent to the sink for the length of the call.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    /// The tag the submission carried.
    pub tag: u64,
    /// The id of the message this answers (its `correlation_id`), when known.
    pub correlation_id: Option<&'a str>,
    /// What became of the message.
    pub outcome: Outcome,
    /// The encoding of `body` (the request's codec).
    pub codec: Codec,
    /// The encoded reply envelope (a frame body), or empty when nothing is
    /// sent back (an Event without `ack`, an absorbed Response or Error).
    pub body: &'a [u8],
}

/// Receives replies. Called on engine threads: it must not block for long
/// (copy the bytes into a connection's write buffer, hand them to a
/// channel).
pub trait ReplySink: Send + Sync + 'static {
    /// Takes one reply.
    fn deliver(&self, reply: Reply<'_>);
}

impl<F> ReplySink for F
where
    F: Fn(Reply<'_>) + Send + Sync + 'static,
{
    fn deliver(&self, reply: Reply<'_>) {
        self(reply)
    }
}

/// A registered sink's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SinkId(pub(crate) u32);

impl SinkId {
    /// The number, for logs.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// Where one message's reply goes: the sink, the submission's tag, and the
/// codec to answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) sink: SinkId,
    pub(crate) tag: u64,
    pub(crate) codec: Codec,
}

/// The registered sinks. Registration is rare (read-copy-update); lookups
/// are one `arc-swap` load.
pub(crate) struct SinkTable {
    sinks: SwapCell<Vec<Arc<dyn ReplySink>>>,
}

impl std::fmt::Debug for SinkTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkTable")
            .field("sinks", &self.sinks.load().len())
            .finish()
    }
}

impl Default for SinkTable {
    fn default() -> SinkTable {
        SinkTable {
            sinks: SwapCell::new(Arc::new(Vec::new())),
        }
    }
}

impl SinkTable {
    pub(crate) fn register(&self, sink: Arc<dyn ReplySink>) -> SinkId {
        let mut index = 0;
        self.sinks.update(|sinks| {
            let mut next = Vec::with_capacity(sinks.len() + 1);
            next.extend(sinks.iter().cloned());
            index = next.len();
            next.push(Arc::clone(&sink));
            Arc::new(next)
        });
        SinkId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// Hands `reply` to sink `id`. An unknown id cannot come from our API;
    /// it is ignored rather than trusted.
    pub(crate) fn deliver(&self, id: SinkId, reply: Reply<'_>) {
        let sinks = self.sinks.load();
        if let Some(sink) = sinks.get(id.0 as usize) {
            sink.deliver(reply);
        }
    }
}
