//! [`Engine::call`](super::Engine::call)'s replies: each waiting caller
//! gets its own, owned.

use std::collections::HashMap;
use std::sync::mpsc;

use crate::codec::Codec;
use crate::sync::Mutex;

use super::sink::{Outcome, Reply, ReplySink};

/// A reply, owned (what [`Engine::call`](super::Engine::call) returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedReply {
    /// What became of the message.
    pub outcome: Outcome,
    /// The id of the message answered, when known.
    pub correlation_id: Option<String>,
    /// The reply's codec.
    pub codec: Codec,
    /// The encoded reply envelope (empty when nothing is sent back).
    pub body: Vec<u8>,
}

impl OwnedReply {
    /// Copies a lent reply.
    pub fn from_reply(reply: &Reply<'_>) -> OwnedReply {
        OwnedReply {
            outcome: reply.outcome,
            correlation_id: reply.correlation_id.map(str::to_owned),
            codec: reply.codec,
            body: reply.body.to_vec(),
        }
    }
}

/// Routes the replies of [`Engine::call`] to their waiting callers.
#[derive(Default)]
pub(super) struct CallSink {
    pub(super) waiting: Mutex<HashMap<u64, mpsc::SyncSender<OwnedReply>>>,
}

impl ReplySink for CallSink {
    fn deliver(&self, reply: Reply<'_>) {
        if let Some(waiter) = self.waiting.lock().remove(&reply.tag) {
            let _ = waiter.send(OwnedReply::from_reply(&reply));
        }
    }
}
