//! What `serve`'s admin endpoint reports: the engine's, the server's, the
//! security tables', the NATS ingress's and the process's metrics, and
//! whether to send it traffic: the engine running and, with `[nats]`, the
//! broker connected (keys are loaded before the engine starts); not from
//! the moment SIGTERM arrives, so a balancer stops sending first while the
//! drain answers what is in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcp_engine::admin::{
    AdminSource, Exposition, Readiness, write_audit, write_build_info, write_engine, write_process,
    write_security, write_server,
};
use mcp_engine::engine::{Engine, Status};
use mcp_engine::server::Server;

use super::broker::BrokerView;

/// The endpoint's view of one `serve`.
pub(crate) struct ServeAdmin {
    engine: Arc<Engine>,
    server: Option<Arc<Server>>,
    broker: Option<Box<dyn BrokerView>>,
    draining: AtomicBool,
}

impl ServeAdmin {
    pub(crate) fn new(
        engine: Arc<Engine>,
        server: Option<Arc<Server>>,
        broker: Option<Box<dyn BrokerView>>,
    ) -> ServeAdmin {
        ServeAdmin {
            engine,
            server,
            broker,
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
        write_security(&mut exposition, self.engine.security());
        if let Some(audit) = self.engine.audit_stats() {
            write_audit(&mut exposition, &audit);
        }
        if let Some(server) = &self.server {
            write_server(&mut exposition, &server.stats());
        }
        if let Some(broker) = &self.broker {
            broker.write_metrics(&mut exposition);
        }
        write_process(&mut exposition);
    }

    fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            return Readiness::NotReady("shutting down".to_owned());
        }
        if self.engine.state().status != Status::Running {
            return Readiness::NotReady("the engine is not running".to_owned());
        }
        if self
            .broker
            .as_ref()
            .is_some_and(|broker| !broker.connected())
        {
            return Readiness::NotReady("not connected to the NATS broker".to_owned());
        }
        Readiness::Ready
    }
}
