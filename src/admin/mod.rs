//! The admin endpoint: plain HTTP/1.1 on a listener and a thread of its
//! own, off the message path, for what operators' tools ask of a server.
//! `GET /metrics` (the Prometheus text format 0.0.4), `GET /healthz`
//! (alive), `GET /readyz` (whether to send it traffic); anything else is
//! 404 or 405. Requests are read with httparse; what a peer can hold is
//! bounded by [`AdminLimits`].
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//! use mcp_engine::admin::{AdminLimits, AdminServer, AdminSource, Readiness};
//!
//! struct Source;
//! impl AdminSource for Source {
//!     fn write_metrics(&self, out: &mut String) {
//!         out.push_str("# TYPE up gauge\nup 1\n");
//!     }
//!     fn readiness(&self) -> Readiness {
//!         Readiness::Ready
//!     }
//! }
//!
//! let admin = AdminServer::start("127.0.0.1:0".parse()?, AdminLimits::default(), Arc::new(Source))?;
//! let mut peer = std::net::TcpStream::connect(admin.local_addr())?;
//! peer.write_all(b"GET /metrics HTTP/1.1\r\nHost: engine\r\n\r\n")?;
//! let mut response = String::new();
//! peer.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.contains("\r\n\r\n# TYPE up gauge\nup 1\n"));
//! // The endpoint's own counters follow the source's.
//! assert!(response.contains("\nmcp_admin_responses_total 0\n"));
//! admin.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod exposition;
mod families;
mod process;
mod request;
mod server;

#[cfg(all(test, not(loom)))]
mod tests;

pub use exposition::Exposition;
#[cfg(feature = "nats")]
pub use families::write_nats;
pub use families::{write_audit, write_build_info, write_engine, write_security, write_server};
pub use process::{ProcessStats, write_process};
pub use server::{
    AdminLimits, AdminServer, AdminSource, AdminStats, METRICS_CONTENT_TYPE, Readiness,
};
