//! What `serve`'s admin endpoint reports: the engine's and the server's
//! metrics, and whether to send it traffic (not from the moment SIGTERM
//! arrives: a balancer stops sending first, while the drain answers what
//! is in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcp_engine::admin::{
    AdminSource, Exposition, Readiness, write_build_info, write_engine, write_server,
};
use mcp_engine::engine::{Engine, Status};
use mcp_engine::server::Server;

/// The endpoint's view of one `serve`.
pub(crate) struct ServeAdmin {
    engine: Arc<Engine>,
    server: Option<Arc<Server>>,
    draining: AtomicBool,
}

impl ServeAdmin {
    pub(crate) fn new(engine: Arc<Engine>, server: Option<Arc<Server>>) -> ServeAdmin {
        ServeAdmin {
            engine,
            server,
            draining: AtomicBool::new(false),
        }
    }

    /// Shutting down: `/readyz` answers 503 from now on.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

impl AdminSource for ServeAdmin {
    fn write_metrics(&self, out: &mut String) {
        let mut exposition = Exposition::new(out);
        write_build_info(&mut exposition);
        write_engine(&mut exposition, &self.engine.metrics());
        if let Some(server) = &self.server {
            write_server(&mut exposition, &server.stats());
        }
    }

    fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            return Readiness::NotReady("shutting down".to_owned());
        }
        match self.engine.state().status {
            Status::Running => Readiness::Ready,
            _ => Readiness::NotReady("the engine is not running".to_owned()),
        }
    }
}
