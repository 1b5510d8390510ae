//! The load harness behind `mcp-bench`: a workload of unique messages made
//! before the clock starts, sent open-loop at a fixed rate (latency from
//! each message's intended send time, so a stall is not hidden by the
//! sender waiting for it) or closed-loop with a window of messages in
//! flight (peak throughput), in-process, over TCP/TLS or through a NATS
//! broker (feature `nats`); then latency
//! percentiles, throughput, errors by code and what the engine cost.

mod generator;
mod inproc;
#[cfg(feature = "nats")]
mod nats;
mod net;
mod record;
mod report;
mod workload;

use std::time::Duration;

pub use generator::{Framing, Generated, id_of, index_of_id};
pub use inproc::{LOAD_THREADS, drive, run_inproc, settle, spin_until, wait_until};
#[cfg(feature = "nats")]
pub use nats::{NatsBroker, run_nats};
pub use net::{NetTarget, run_net};
pub use record::Recorder;
pub(crate) use report::one_run;
pub use report::{Budgets, Figures, Latency, Report, measure};
pub use workload::{Lanes, Messages, Prepared, Setup, Workload};

/// How messages are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// At a fixed rate, whatever the replies do (messages per second).
    Open {
        /// Messages per second.
        rate: u64,
        /// Spin until each send is due instead of sleeping most of the
        /// wait: the sender takes a core, and its own lateness (the host's
        /// timer latency) no longer hides the engine's.
        spin: bool,
    },
    /// As fast as replies allow, with at most `window` in flight, sent
    /// `batch` at a time.
    Closed {
        /// Messages in flight at most.
        window: usize,
        /// Messages handed over at once (in process: one
        /// `Engine::submit_batch`, all to one worker).
        batch: usize,
    },
}

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How messages are sent.
    pub pace: Pace,
    /// The measured part.
    pub duration: Duration,
    /// Sent before the measured part, not counted.
    pub warmup: Duration,
}

impl Plan {
    /// How many messages the plan needs (open loop), or may use at most
    /// (closed loop: `pool`).
    pub fn messages(&self, pool: usize) -> usize {
        match self.pace {
            Pace::Open { rate, .. } => {
                let seconds = (self.duration + self.warmup).as_secs_f64();
                (rate as f64 * seconds).ceil() as usize
            }
            Pace::Closed { .. } => pool,
        }
    }

    /// Messages handed over at once: `batch` in a closed loop (at least
    /// 1), each alone in an open one.
    pub fn batch_size(&self) -> usize {
        match self.pace {
            Pace::Open { .. } => 1,
            Pace::Closed { batch, .. } => batch.max(1),
        }
    }

    /// When message `index` is due, from the start (open loop).
    pub fn due(&self, index: usize) -> Option<Duration> {
        match self.pace {
            Pace::Open { rate, .. } => Some(Duration::from_nanos(
                (index as u128 * 1_000_000_000 / u128::from(rate.max(1))) as u64,
            )),
            Pace::Closed { .. } => None,
        }
    }

    /// The plan as it ran when the sender stopped `elapsed` after the
    /// start: a closed-loop run that used up its messages early measured a
    /// shorter window.
    pub fn measured(&self, elapsed: Duration) -> Plan {
        Plan {
            duration: self.duration.min(elapsed.saturating_sub(self.warmup)),
            ..*self
        }
    }
}
