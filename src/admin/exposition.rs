//! The Prometheus text format 0.0.4: the engine's and the server's
//! counters as metrics named the Prometheus way (`mcp_` prefix, `_total`
//! counters, seconds and bytes).

use std::fmt::Write as _;

use crate::engine::{LATENCY_BOUNDS_NS, MetricsSnapshot};
use crate::error::Code;
use crate::server::ServerStats;

/// Writes metric families into a text, one `# HELP` and `# TYPE` each.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
}

impl<'a> Exposition<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Exposition<'a> {
        Exposition { out }
    }

    /// Starts the family `name` of `kind` (`counter`, `gauge`,
    /// `histogram`), with its help text.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of `name` with `labels` (names and values; the values
    /// escaped here).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (n, (label, text)) in labels.iter().enumerate() {
                if n > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// Counters of one sample each: name, help, value.
    pub fn counters(&mut self, counters: &[(&str, &str, u64)]) -> &mut Self {
        for (name, help, value) in counters {
            self.single(name, "counter", help, *value as f64);
        }
        self
    }

    /// A family of one sample per value of one `label`.
    pub fn by_label(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) -> &mut Self {
        self.family(name, kind, help);
        for (text, value) in values {
            self.sample(name, &[(label, text)], *value as f64);
        }
        self
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }
}

/// A sample value: integers as integers, `+Inf` and `NaN` as the format
/// spells them.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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

#[cfg(test)]
mod tests {
    use super::{Exposition, number, write_engine};
    use crate::engine::{LATENCY_BOUNDS_NS, MetricsSnapshot, Stage, StageLatency};
    use crate::error::Code;

    #[test]
    fn labels_and_numbers_are_written_as_the_format_says() {
        let mut text = String::new();
        Exposition::new(&mut text)
            .family("mcp_x_total", "counter", "Line one\nback\\slash.")
            .sample("mcp_x_total", &[("path", "a\"b\\c\nd")], 3.0)
            .sample("mcp_x_total", &[], 0.25);
        assert_eq!(
            text,
            "# HELP mcp_x_total Line one\\nback\\\\slash.\n# TYPE mcp_x_total counter\n\
             mcp_x_total{path=\"a\\\"b\\\\c\\nd\"} 3\nmcp_x_total 0.25\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e-6), "0.000001");
        assert_eq!(number(12345678.0), "12345678");
    }

    #[test]
    fn the_servers_connections_are_counted_by_reason() {
        let stats = crate::server::ServerStats {
            refused_per_ip: 3,
            closed_stalled: 2,
            open: 5,
            ..Default::default()
        };
        let mut text = String::new();
        super::write_server(&mut Exposition::new(&mut text), &stats);
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
        assert_eq!(text.matches("# TYPE ").count(), 14);
    }
}
