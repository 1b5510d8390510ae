//! `serve`'s NATS ingress (`[nats]`, feature `nats`): started before the
//! listener, drained before it closes, and what the admin endpoint reads
//! of it. A build without the feature refuses a `[nats]` section rather
//! than ignore it: the operator asked for a transport the build lacks.

use std::sync::Arc;

use mcp_engine::admin::Exposition;
use mcp_engine::engine::Engine;
use mcp_engine::{Config, Error};

/// The ingress as the admin endpoint sees it.
pub(crate) trait BrokerView: Send + Sync {
    /// Appends the ingress's metrics.
    fn write_metrics(&self, exposition: &mut Exposition<'_>);
    /// Whether the broker connection is up now.
    fn connected(&self) -> bool;
}

#[cfg(feature = "nats")]
mod with_nats {
    use super::*;
    use mcp_engine::nats::{NatsIngress, NatsStatsReader};

    /// The ingress, when the config has a `[nats]` section.
    pub(crate) fn start(
        engine: &Arc<Engine>,
        config: &Config,
    ) -> Result<Option<NatsIngress>, Error> {
        config
            .nats
            .as_ref()
            .map(|_| NatsIngress::start(Arc::clone(engine), config))
            .transpose()
    }

    /// What the admin endpoint reads of the ingress.
    pub(crate) fn view(nats: Option<&NatsIngress>) -> Option<Box<dyn BrokerView>> {
        nats.map(|nats| Box::new(nats.stats_reader()) as Box<dyn BrokerView>)
    }

    /// Stops the ingress, draining it, and logs what it did.
    pub(crate) fn stop(nats: Option<NatsIngress>) {
        if let Some(nats) = nats {
            let stats = nats.shutdown();
            tracing::info!(?stats, "NATS ingress stopped");
        }
    }

    impl BrokerView for NatsStatsReader {
        fn write_metrics(&self, exposition: &mut Exposition<'_>) {
            mcp_engine::admin::write_nats(exposition, &self.stats());
        }

        fn connected(&self) -> bool {
            self.stats().connected
        }
    }
}

#[cfg(not(feature = "nats"))]
mod without_nats {
    use super::*;

    /// What `start` returns in a build without NATS: never made.
    #[derive(Debug)]
    pub(crate) enum NoIngress {}

    /// Refuses a `[nats]` section.
    pub(crate) fn start(
        _engine: &Arc<Engine>,
        config: &Config,
    ) -> Result<Option<NoIngress>, Error> {
        match config.nats {
            Some(_) => Err(Error::new(
                mcp_engine::Code::ConfigurationError,
                "`[nats]`: this build has no NATS support (build with `--features nats`)",
            )),
            None => Ok(None),
        }
    }

    pub(crate) fn view(nats: Option<&NoIngress>) -> Option<Box<dyn BrokerView>> {
        nats.map(|never| match *never {})
    }

    pub(crate) fn stop(nats: Option<NoIngress>) {
        if let Some(never) = nats {
            match never {}
        }
    }
}

#[cfg(feature = "nats")]
pub(crate) use with_nats::{start, stop, view};
#[cfg(not(feature = "nats"))]
pub(crate) use without_nats::{start, stop, view};
