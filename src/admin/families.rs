//! The engine's, the server's and the security tables' figures as
//! metric families named the Prometheus way (`mcp_` prefix, `_total`
//! counters, seconds and bytes).

use super::Exposition;
use super::exposition::number;
use crate::engine::{AuditStats, LATENCY_BOUNDS_NS, MetricsSnapshot};
use crate::error::Code;
use crate::security::SecurityState;
use crate::server::ServerStats;

/// The build: `mcp_build_info{version="..."} 1`.
pub fn write_build_info(exposition: &mut Exposition<'_>) {
    exposition
        .family("mcp_build_info", "gauge", "The engine's version; always 1.")
        .sample(
            "mcp_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
}

/// The engine's counters, queue depths and stage latencies.
pub fn write_engine(exposition: &mut Exposition<'_>, metrics: &MetricsSnapshot) {
    let counters: [(&str, &str, u64); 10] = [
        (
            "mcp_messages_accepted_total",
            "Messages taken into a worker's queue.",
            metrics.accepted,
        ),
        (
            "mcp_messages_refused_at_intake_total",
            "Messages refused before a queue (full, or shutting down); each was answered.",
            metrics.refused_at_intake,
        ),
        ("mcp_responses_total", "Responses sent.", metrics.responses),
        (
            "mcp_events_total",
            "Events delivered to their subscribers.",
            metrics.events,
        ),
        (
            "mcp_event_deliveries_total",
            "Event handler calls.",
            metrics.deliveries,
        ),
        (
            "mcp_unmatched_replies_total",
            "Responses and Errors received that answered no pending command.",
            metrics.unmatched_replies,
        ),
        (
            "mcp_handler_panics_total",
            "Handler panics, each answered internal_error.",
            metrics.handler_panics,
        ),
        (
            "mcp_late_answers_total",
            "Answers that came after the timer had answered timeout.",
            metrics.late_answers,
        ),
        (
            "mcp_worker_restarts_total",
            "Worker loops restarted after a panic.",
            metrics.worker_restarts,
        ),
        (
            "mcp_run_on_submitter_total",
            "Messages the submitting thread ran itself while their worker slept.",
            metrics.run_on_submitter,
        ),
    ];
    exposition.counters(&counters);
    exposition.single(
        "mcp_submitter_busy_seconds_total",
        "counter",
        "Wall-clock time submitting threads spent running messages themselves.",
        metrics.submitter_busy_ns as f64 / 1e9,
    );
    exposition.family(
        "mcp_messages_shed_total",
        "counter",
        "Messages answered resource_exhausted by load shedding (their worker's queue past engine.shed_at_percent), by level; Critical is never shed.",
    );
    for (level, count) in &metrics.shed {
        exposition.sample(
            "mcp_messages_shed_total",
            &[("level", level.as_str())],
            *count as f64,
        );
    }
    exposition.family(
        "mcp_errors_total",
        "counter",
        "Error replies sent, by the protocol's error code.",
    );
    for code in Code::ALL {
        exposition.sample(
            "mcp_errors_total",
            &[
                ("code", code.as_str()),
                ("category", code.category().as_str()),
            ],
            metrics.errors_of(code) as f64,
        );
    }
    exposition.family(
        "mcp_queue_depth",
        "gauge",
        "Messages waiting in each worker's queue.",
    );
    for (worker, depth) in metrics.queue_depths.iter().enumerate() {
        exposition.sample(
            "mcp_queue_depth",
            &[("worker", &worker.to_string())],
            *depth as f64,
        );
    }
    exposition.family(
        "mcp_stage_latency_seconds",
        "histogram",
        "Time spent in each pipeline stage, and from acceptance to reply (total), of one message in every 16 (engine::TIMED_EVERY).",
    );
    for latency in &metrics.latencies {
        let stage = latency.stage.as_str();
        for (bound, count) in LATENCY_BOUNDS_NS.iter().zip(latency.at_most) {
            let le = number(*bound as f64 / 1e9);
            exposition.sample(
                "mcp_stage_latency_seconds_bucket",
                &[("stage", stage), ("le", &le)],
                count as f64,
            );
        }
        exposition
            .sample(
                "mcp_stage_latency_seconds_bucket",
                &[("stage", stage), ("le", "+Inf")],
                latency.count as f64,
            )
            .sample(
                "mcp_stage_latency_seconds_sum",
                &[("stage", stage)],
                latency.sum_ns as f64 / 1e9,
            )
            .sample(
                "mcp_stage_latency_seconds_count",
                &[("stage", stage)],
                latency.count as f64,
            );
    }
}

/// The TLS server's connections and bytes.
pub fn write_server(exposition: &mut Exposition<'_>, stats: &ServerStats) {
    exposition.single(
        "mcp_connections_accepted_total",
        "counter",
        "Connections accepted.",
        stats.accepted as f64,
    );
    exposition.by_label(
        "mcp_connections_refused_total",
        "counter",
        "Connections closed on accept, by the limit that refused them.",
        "reason",
        &[
            ("max_connections", stats.refused_at_limit),
            ("per_ip", stats.refused_per_ip),
        ],
    );
    exposition.single(
        "mcp_connections_open",
        "gauge",
        "Connections open now.",
        stats.open as f64,
    );
    exposition.by_label(
        "mcp_connections_closed_total",
        "counter",
        "Connections the server closed, by why.",
        "reason",
        &[
            ("idle", stats.closed_idle),
            ("frame_timeout", stats.closed_frame_timeout),
            ("handshake_timeout", stats.closed_handshake_timeout),
            ("stalled", stats.closed_stalled),
        ],
    );
    let counters: [(&str, &str, u64); 4] = [
        (
            "mcp_tls_handshake_failures_total",
            "TLS handshakes and records refused.",
            stats.tls_failures,
        ),
        (
            "mcp_framing_errors_total",
            "Frames refused (size, zero length, codec byte).",
            stats.framing_errors,
        ),
        (
            "mcp_replies_orphaned_total",
            "Replies whose connection had closed.",
            stats.replies_orphaned,
        ),
        (
            "mcp_requests_read_total",
            "Frames read and handed to the engine.",
            stats.requests_read,
        ),
    ];
    exposition.counters(&counters);
    exposition.single(
        "mcp_held_bytes",
        "gauge",
        "Bytes all connections hold now (partial frames, requests in the engine, replies not yet written).",
        stats.held_bytes as f64,
    );
    exposition.single(
        "mcp_held_peak_bytes",
        "gauge",
        "The most bytes all connections held at once.",
        stats.held_peak_bytes as f64,
    );
}

/// The keys in use (their ids and uses, never their material), and how
/// full the replay tables are.
pub fn write_security(exposition: &mut Exposition<'_>, security: &SecurityState) {
    let keyring = security.keyring.load();
    exposition.family(
        "mcp_key_info",
        "gauge",
        "The keys the engine holds, by use and id; state is active (new output is made with it), standby (accepted) or retired (accepted until its grace period ends). Always 1.",
    );
    for (key_use, id, state) in keyring.states() {
        exposition.sample(
            "mcp_key_info",
            &[("use", key_use.as_str()), ("id", id), ("state", state)],
            1.0,
        );
    }
    exposition
        .single(
            "mcp_replay_ids",
            "gauge",
            "Message ids the replay table holds now (expired ones until purged).",
            security.replay.len() as f64,
        )
        .single(
            "mcp_replay_ids_capacity",
            "gauge",
            "Message ids the replay table can hold; at capacity, messages are refused.",
            security.replay.capacity() as f64,
        )
        .single(
            "mcp_replay_streams",
            "gauge",
            "Replay streams the stream table holds now (expired ones until purged).",
            security.streams.len() as f64,
        )
        .single(
            "mcp_replay_streams_capacity",
            "gauge",
            "Replay streams the stream table can hold.",
            security.streams.capacity() as f64,
        )
        .single(
            "mcp_revoked_tokens",
            "gauge",
            "Token ids revoked.",
            security.revocations.load().len() as f64,
        );
    exposition.family(
        "mcp_rate_limited_total",
        "counter",
        "Messages refused resource_exhausted over a principal's rate limit, by the role whose limit it was (default: [authorization]'s).",
    );
    for (role, count) in security.rate_refusals() {
        exposition.sample("mcp_rate_limited_total", &[("role", &role)], count as f64);
    }
    exposition.single(
        "mcp_rate_limited_principals",
        "gauge",
        "Principals with a rate-limit bucket now (idle ones are forgotten when the table is full).",
        security.rates.principals() as f64,
    );
}

/// The audit log: lines written, events collapsed into counted lines,
/// dropped, and failed writes.
pub fn write_audit(exposition: &mut Exposition<'_>, stats: &AuditStats) {
    exposition.counters(&[
        (
            "mcp_audit_lines_total",
            "Audit log lines written.",
            stats.lines,
        ),
        (
            "mcp_audit_collapsed_total",
            "Audit events counted into a line of repeats instead of a line of their own.",
            stats.collapsed,
        ),
        (
            "mcp_audit_dropped_total",
            "Audit events dropped: the writer's queue was full, or too many distinct refusals in one interval.",
            stats.dropped,
        ),
        (
            "mcp_audit_write_errors_total",
            "Audit log writes that failed.",
            stats.write_errors,
        ),
    ]);
}

/// The NATS ingress: messages taken and published, and the connection.
#[cfg(feature = "nats")]
pub fn write_nats(exposition: &mut Exposition<'_>, stats: &crate::nats::NatsStats) {
    let counters: [(&str, &str, u64); 9] = [
        (
            "mcp_nats_received_total",
            "Messages taken from the broker (requests and events).",
            stats.received,
        ),
        (
            "mcp_nats_published_total",
            "Replies published to the broker.",
            stats.published,
        ),
        (
            "mcp_nats_refused_at_window_total",
            "Requests answered resource_exhausted: max_in_flight messages were in the engine.",
            stats.refused_at_window,
        ),
        (
            "mcp_nats_malformed_total",
            "Messages the ingress answered itself: no codec, or too large.",
            stats.malformed,
        ),
        (
            "mcp_nats_unpublished_total",
            "Replies that could not be published.",
            stats.unpublished,
        ),
        (
            "mcp_nats_unanswerable_total",
            "Replies whose request had no reply subject.",
            stats.unanswerable,
        ),
        (
            "mcp_nats_abandoned_total",
            "Messages still in the engine when shutdown stopped waiting for them.",
            stats.abandoned,
        ),
        (
            "mcp_nats_disconnects_total",
            "Times the connection to the broker was lost.",
            stats.disconnects,
        ),
        (
            "mcp_nats_reconnects_total",
            "Times the connection to the broker was made again.",
            stats.reconnects,
        ),
    ];
    exposition.counters(&counters).single(
        "mcp_nats_connected",
        "gauge",
        "1 while connected to the broker, 0 otherwise.",
        if stats.connected { 1.0 } else { 0.0 },
    );
}

#[cfg(test)]
mod tests {
    use super::{write_engine, write_security, write_server};
    use crate::admin::Exposition;
    use crate::config::Config;
    use crate::engine::{LATENCY_BOUNDS_NS, MetricsSnapshot, Stage, StageLatency};
    use crate::error::Code;
    use crate::message::unix_nanos_now;
    use crate::security::{Key, Keyring, SecurityState};

    #[test]
    fn the_servers_connections_are_counted_by_reason() {
        let stats = crate::server::ServerStats {
            refused_per_ip: 3,
            closed_stalled: 2,
            open: 5,
            ..Default::default()
        };
        let mut text = String::new();
        write_server(&mut Exposition::new(&mut text), &stats);
        for line in [
            "# TYPE mcp_connections_refused_total counter\n\
             mcp_connections_refused_total{reason=\"max_connections\"} 0\n\
             mcp_connections_refused_total{reason=\"per_ip\"} 3\n",
            "mcp_connections_closed_total{reason=\"stalled\"} 2\n",
            "mcp_connections_open 5\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_stage_histogram_has_cumulative_buckets_a_sum_and_a_count() {
        let mut at_most = [0u64; LATENCY_BOUNDS_NS.len()];
        for (n, bound) in at_most.iter_mut().enumerate() {
            *bound = (n as u64 + 1).min(10);
        }
        let metrics = MetricsSnapshot {
            accepted: 12,
            errors: vec![(Code::Timeout, 2)],
            latencies: vec![StageLatency {
                stage: Stage::Admit,
                count: 10,
                p50_ns: 3_000,
                p99_ns: 9_000,
                p999_ns: 9_000,
                max_ns: 9_000,
                sum_ns: 45_000,
                at_most,
            }],
            queue_depths: vec![0, 4],
            ..MetricsSnapshot::default()
        };
        let mut text = String::new();
        write_engine(&mut Exposition::new(&mut text), &metrics);
        for line in [
            "mcp_messages_accepted_total 12\n",
            "mcp_errors_total{code=\"timeout\",category=\"system\"} 2\n",
            "mcp_errors_total{code=\"access_denied\",category=\"security\"} 0\n",
            "mcp_queue_depth{worker=\"1\"} 4\n",
            "mcp_stage_latency_seconds_bucket{stage=\"admit\",le=\"0.000001\"} 1\n",
            "mcp_stage_latency_seconds_bucket{stage=\"admit\",le=\"+Inf\"} 10\n",
            "mcp_stage_latency_seconds_sum{stage=\"admit\"} 0.000045\n",
            "mcp_stage_latency_seconds_count{stage=\"admit\"} 10\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 15);
    }

    #[test]
    fn keys_are_named_by_use_id_and_state_and_never_by_material() {
        let security = SecurityState::from_config(&Config::default(), unix_nanos_now()).unwrap();
        let secret = b"0123456789abcdef0123456789abcdef-never-in-metrics";
        let first = Keyring::new()
            .with("jwt-1", Key::hs256(secret).unwrap(), true)
            .unwrap()
            .with("sig-1", Key::signing(secret).unwrap(), true)
            .unwrap();
        security.keyring.rotate(first, unix_nanos_now()).unwrap();
        let second = Keyring::new()
            .with("jwt-2", Key::hs256(secret).unwrap(), true)
            .unwrap()
            .with("sig-1", Key::signing(secret).unwrap(), false)
            .unwrap();
        security.keyring.rotate(second, unix_nanos_now()).unwrap();
        let mut text = String::new();
        write_security(&mut Exposition::new(&mut text), &security);
        for line in [
            "mcp_key_info{use=\"jwt\",id=\"jwt-2\",state=\"active\"} 1\n",
            "mcp_key_info{use=\"jwt\",id=\"jwt-1\",state=\"retired\"} 1\n",
            "mcp_key_info{use=\"signing\",id=\"sig-1\",state=\"standby\"} 1\n",
            "mcp_replay_ids 0\n",
            "mcp_replay_streams 0\n",
            "mcp_revoked_tokens 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("never-in-metrics"));
        let capacity = format!("mcp_replay_ids_capacity {}\n", security.replay.capacity());
        assert!(text.contains(&capacity), "{capacity} missing from\n{text}");
    }
}
