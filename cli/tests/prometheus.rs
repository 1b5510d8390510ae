//! A real Prometheus scraping `mcp-engine serve`'s admin endpoint, with the
//! scrape config and alert rules the project ships in `deploy/prometheus/`;
//! and `promtool` checking the endpoint's output and those files.
//!
//! Needs Debian's `prometheus` package (`prometheus` and `promtool`), so it
//! is ignored by default; `.ci/run` installs the package and runs it:
//! `cargo test -p mcp-engine-cli --test prometheus -- --ignored`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::{command, http_get as get, outcome, reply_to, serve_dev};
use mcp_engine::SecurityLevel;

/// How long Prometheus may take to start, scrape and evaluate.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(90);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// Runs `promtool` with `args` in `dir`, feeding it `stdin`; fails the
/// test with promtool's words unless it succeeds.
fn promtool(dir: &Path, args: &[&str], stdin: &[u8]) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `text` as a URL query value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A Prometheus server on a free loopback port, killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Prometheus with the shipped config and rules, scraping `target`
    /// every second instead of every 15.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let shipped = std::fs::read_to_string(deploy_dir().join("prometheus.yml")).unwrap();
        let mut config = shipped.clone();
        for (from, to) in [
            ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
            (
                "evaluation_interval: 15s",
                "evaluation_interval: 1s".to_owned(),
            ),
            ("scrape_timeout: 5s", "scrape_timeout: 1s".to_owned()),
            ("\"127.0.0.1:7451\"", format!("\"{target}\"")),
        ] {
            assert!(config.contains(from), "the shipped config has {from}");
            config = config.replace(from, &to);
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        std::fs::copy(
            deploy_dir().join("alerts.yml"),
            dir.path().join("alerts.yml"),
        )
        .unwrap();
        let addr: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (Debian's prometheus package; .ci/run installs it)");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The JSON of `GET /api/v1/{path}`, once Prometheus answers.
    fn api(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = get(self.addr, &format!("/api/v1/{path}"))?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// The single value of the instant query `query`, if it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let answer = self.api(&format!("query?query={}", query_value(query)))?;
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Waits until `query`'s value is `expected`; fails the test with the
    /// last value seen and Prometheus's log if it never is.
    fn wait_for(&mut self, query: &str, expected: f64) {
        let until = Instant::now() + PROMETHEUS_WAIT;
        let mut seen = None;
        while Instant::now() < until {
            seen = self.value(query);
            if seen == Some(expected) {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "prometheus exited:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{query}: {seen:?}, not {expected}, after {PROMETHEUS_WAIT:?}\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs Debian's prometheus package; .ci/run installs it and runs this"]
fn prometheus_scrapes_the_engines_counters_with_the_shipped_config_and_rules() {
    let served = serve_dev();
    let admin = served.admin_addr();
    let client = served.connect();
    let mut envelopes = served.envelopes("admin");
    const ANSWERED: u64 = 37;
    for n in 0..ANSWERED {
        let level = [SecurityLevel::Standard, SecurityLevel::Critical][n as usize % 2];
        let echo = command(
            &mut envelopes,
            level,
            "demo.echo",
            Some(&format!("{{\"n\":{n}}}")),
        );
        assert_eq!(
            outcome(&mut envelopes, &reply_to(&client, &echo)),
            "Response"
        );
    }
    let mut reader = served.envelopes("reader");
    let denied = command(
        &mut reader,
        SecurityLevel::Standard,
        "demo.sleep",
        Some("{\"ms\":1}"),
    );
    assert_eq!(
        outcome(&mut reader, &reply_to(&client, &denied)),
        "access_denied"
    );

    // promtool accepts what the endpoint serves after traffic (histogram
    // buckets filled), and the shipped files.
    let (status, metrics) = get(admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    promtool(&deploy_dir(), &["check", "metrics"], metrics.as_bytes());
    promtool(&deploy_dir(), &["check", "config", "prometheus.yml"], b"");
    promtool(&deploy_dir(), &["check", "rules", "alerts.yml"], b"");
    promtool(&deploy_dir(), &["test", "rules", "alerts.test.yml"], b"");

    // Prometheus scrapes the engine and reads its counters as they are.
    let mut prometheus = Prometheus::start(admin);
    prometheus.wait_for("up{job=\"mcp-engine\"}", 1.0);
    prometheus.wait_for(
        "mcp_messages_accepted_total{job=\"mcp-engine\"}",
        (ANSWERED + 1) as f64,
    );
    prometheus.wait_for("mcp_responses_total{job=\"mcp-engine\"}", ANSWERED as f64);
    prometheus.wait_for(
        "mcp_errors_total{job=\"mcp-engine\",code=\"access_denied\"}",
        1.0,
    );
    prometheus.wait_for(
        "count(mcp_key_info{job=\"mcp-engine\",state=\"active\"})",
        3.0,
    );
    // Every shipped rule is loaded and evaluates without error.
    let shipped_rules = std::fs::read_to_string(deploy_dir().join("alerts.yml"))
        .unwrap()
        .matches("- alert: ")
        .count();
    let until = Instant::now() + PROMETHEUS_WAIT;
    loop {
        let rules = prometheus.api("rules").unwrap_or_default();
        let group = rules["data"]["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == "mcp-engine"));
        let healthy = group.and_then(|g| g["rules"].as_array()).map(|rules| {
            let evaluated = rules.iter().all(|rule| rule["health"] == "ok");
            (rules.len(), evaluated)
        });
        if healthy == Some((shipped_rules, true)) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the shipped rules: {healthy:?} (count, all ok)\n{rules}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
