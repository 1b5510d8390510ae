//! The engine: workers that take frame bodies from bounded lock-free queues,
//! run every stage on each (validate, admit, route, authorize, execute,
//! respond), and hand one reply per message to a sink.
//!
//! Start one with [`EngineBuilder`]; see the crate docs for a complete
//! example. `docs/thread-safety.md` says which thread owns what and which
//! loom model checks each hand-over.

mod audit_log;
mod builder;
mod call_sink;
mod caller_thread;
mod clock;
mod command_call;
mod concurrency;
mod error_log;
mod handler;
mod idle;
mod intake;
mod lifecycle;
mod load_shedding;
mod metrics;
mod outbound;
mod pending;
mod pipeline;
mod recovery;
mod registry;
mod reply;
mod run_credit;
mod runtime;
mod shared;
mod sink;
mod stage_gate;
mod staged;
mod state;
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod test_support;
mod thread_plan;
mod timer;
mod timer_inbox;
mod wall_clock;
mod worker;
mod worker_shared;

pub use audit_log::{AuditLog, AuditStats, WRITER_PERIOD};
pub use builder::EngineBuilder;
pub use call_sink::OwnedReply;
pub use clock::ManualClock;
pub use command_call::CommandCall;
pub(crate) use concurrency::Ring;
pub use error_log::{ErrorHook, ErrorRecord};
pub use handler::{Answer, Caller, CommandHandler, Deferred, Event, EventHandler, Request};
pub use idle::IdleStrategy;
pub use metrics::{LATENCY_BOUNDS_NS, MetricsSnapshot, StageLatency, TIMED_EVERY};
pub use outbound::{PeerReply, PendingReply};
pub use pending::Responder;
pub use pipeline::Stage;
pub use recovery::{BreakerPolicy, RetryPolicy};
pub use registry::CommandSpec;
pub use runtime::Engine;
pub use sink::{Outcome, Reply, ReplySink, SinkId};
pub use state::{ProtocolState, RecentMessage, Status};
pub use worker_shared::Submission;
