//! The state shared by the server handle, the I/O thread and the engine's
//! sink: the engine, the settings, the mailroom and the counters.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;

use super::outbox::{Mailroom, Wake};
use super::settings::ServerSettings;
use super::stats::ServerCounters;
use crate::engine::{Engine, SinkId};

/// Wakes the I/O thread.
pub(super) struct IoWaker(pub(super) mio::Waker);

impl Wake for IoWaker {
    fn wake(&self) {
        // Fails only if the poller is gone, i.e. the loop has ended.
        let _ = self.0.wake();
    }
}

/// State shared by the server handle, the I/O thread and the sink.
pub(super) struct ServerShared {
    pub(super) engine: Arc<Engine>,
    pub(super) sink: SinkId,
    pub(super) settings: ArcSwap<ServerSettings>,
    pub(super) mailroom: crate::sync::Arc<Mailroom<IoWaker>>,
    pub(super) stopping: AtomicBool,
    pub(super) counters: ServerCounters,
}
