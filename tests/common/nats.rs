//! A NATS broker for the tests: Debian's `nats-server`, started on a free
//! loopback port and stopped on drop. A test that cannot start one fails:
//! `.ci/run` installs the package.

use std::sync::Arc;

use mcp_engine::config::NatsConfig;
use mcp_engine::engine::{Engine, EngineBuilder};
use mcp_engine::nats::NatsIngress;
use mcp_engine::nats::local_broker::LocalBroker;

/// A running `nats-server`, killed when dropped.
pub struct Broker(LocalBroker);

impl Broker {
    /// A broker on a free port.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker on a free port, with more of `nats-server`'s flags
    /// (credentials, TLS).
    pub fn start_with(flags: &[&str]) -> Broker {
        Broker(
            LocalBroker::start(flags)
                .unwrap_or_else(|e| panic!("{e}: install Debian's `nats-server` package")),
        )
    }

    /// A broker on `port` (a restarted one takes its old port).
    pub fn start_on(port: u16) -> Broker {
        Broker(LocalBroker::start_on(port, &[]).unwrap())
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    /// Kills the broker (as a crash would) and waits for it to end.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// The broker `.ci/run` started on loopback (its URL in
/// `MCP_TEST_NATS_URL`), or else one of the test's own.
pub enum SharedBroker {
    /// Started outside the test, which leaves it running.
    External(String),
    /// Started by the test, and stopped when dropped.
    Own(Broker),
}

impl SharedBroker {
    pub fn get() -> SharedBroker {
        match std::env::var("MCP_TEST_NATS_URL") {
            Ok(url) if !url.is_empty() => SharedBroker::External(url),
            _ => SharedBroker::Own(Broker::start()),
        }
    }

    pub fn url(&self) -> String {
        match self {
            SharedBroker::External(url) => url.clone(),
            SharedBroker::Own(broker) => broker.url(),
        }
    }
}

/// `[nats]` for `url`, on subjects of this test's own (`prefix`), so that
/// tests sharing a broker do not see each other's messages.
pub fn nats_config(url: &str, prefix: &str) -> NatsConfig {
    let mut config = NatsConfig::with_urls([url]);
    config.subject = format!("{prefix}.requests");
    config.events_subject = format!("{prefix}.events");
    config.queue_group = format!("{prefix}-engines");
    config
}

/// An engine with the demo handlers behind a NATS ingress.
pub struct NatsEngine {
    pub engine: Arc<Engine>,
    pub ingress: Option<NatsIngress>,
}

impl NatsEngine {
    pub fn start(config: &mcp_engine::Config) -> NatsEngine {
        let (builder, _) = mcp_engine::demo::register(EngineBuilder::new(config.clone()));
        let engine = Arc::new(builder.start().unwrap());
        let ingress = NatsIngress::start(Arc::clone(&engine), config).unwrap();
        NatsEngine {
            engine,
            ingress: Some(ingress),
        }
    }

    /// Stops the ingress (draining it), then the engine.
    pub fn stop(&mut self) -> mcp_engine::nats::NatsStats {
        let stats = self
            .ingress
            .take()
            .map(NatsIngress::shutdown)
            .unwrap_or_default();
        self.engine.shutdown();
        stats
    }

    /// Commands the engine answered.
    pub fn responses(&self) -> u64 {
        self.engine.metrics().responses
    }
}
