//! The server's counters, and the snapshot of them it reports.

use std::sync::atomic::AtomicU64;

/// Counters of what the server did with connections.
#[derive(Debug, Default)]
pub(super) struct ServerCounters {
    pub(super) accepted: AtomicU64,
    pub(super) refused_at_limit: AtomicU64,
    pub(super) refused_per_ip: AtomicU64,
    pub(super) open: AtomicU64,
    pub(super) closed_idle: AtomicU64,
    pub(super) closed_frame_timeout: AtomicU64,
    pub(super) closed_handshake_timeout: AtomicU64,
    pub(super) closed_stalled: AtomicU64,
    pub(super) tls_failures: AtomicU64,
    pub(super) framing_errors: AtomicU64,
    pub(super) requests_read: AtomicU64,
    pub(super) held_bytes: AtomicU64,
    pub(super) held_peak_bytes: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed on accept because `max_connections` were open.
    pub refused_at_limit: u64,
    /// Connections closed on accept because their address had
    /// `max_connections_per_ip` open.
    pub refused_per_ip: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// Connections closed because a frame did not arrive whole in time
    /// (`frame_timeout_ms`, `frame_min_rate_kib`).
    pub closed_frame_timeout: u64,
    /// Connections closed by the handshake timeout.
    pub closed_handshake_timeout: u64,
    /// Connections closed because their peer did not read their replies.
    pub closed_stalled: u64,
    /// Connections refused by TLS (version, ALPN, certificate, bad records).
    pub tls_failures: u64,
    /// Frames answered by the server itself (too large, bad codec byte).
    pub framing_errors: u64,
    /// Replies whose connection had closed before they were ready.
    pub replies_orphaned: u64,
    /// Requests read from connections and handed to the engine.
    pub requests_read: u64,
    /// Bytes the connections hold now against `memory_budget_mib`: partial
    /// frames, requests in the engine, replies waiting to be written.
    pub held_bytes: u64,
    /// The most [`held_bytes`](Self::held_bytes) has been.
    pub held_peak_bytes: u64,
}
