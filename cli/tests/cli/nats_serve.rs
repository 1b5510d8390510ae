//! `mcp-engine serve` with a `[nats]` section, beside its TLS listener and
//! instead of it, and `mcp-engine send --nats` (feature `nats`; needs
//! Debian's `nats-server`).
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::nats::Broker;
use crate::common::serve::{Served, free_port, http_get, metric, serve_config, start_config};

fn nats_section(url: &str, prefix: &str) -> String {
    format!(
        "\n[nats]\nurls = [\"{url}\"]\nsubject = \"{prefix}.requests\"\n\
         events_subject = \"{prefix}.events\"\nqueue_group = \"{prefix}\"\n"
    )
}

fn send_nats(served: &Served, url: &str, subject: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-engine"))
        .arg("send")
        .arg("--credentials")
        .arg(served.dir.join("credentials.json"))
        .args(["--nats", url, "--subject", subject, "--timeout-ms", "2000"])
        .args(args)
        .output()
        .unwrap()
}

/// `send --nats` until an engine answers (the engine subscribes at start,
/// which this test does not see), then its output.
fn first_answer(served: &Served, url: &str, subject: &str, args: &[&str]) -> Output {
    let start = Instant::now();
    loop {
        let output = send_nats(served, url, subject, args);
        if output.status.code() != Some(2) {
            return output;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no engine answered: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_answers_through_nats_beside_its_listener_and_send_reaches_it() {
    let broker = Broker::start();
    let url = broker.url();
    let mut served = serve_config(|text| text.push_str(&nats_section(&url, "beside")));
    for level in ["Standard", "Critical"] {
        let output = first_answer(
            &served,
            &url,
            "beside.requests",
            &["--level", level, "demo.echo", r#"{"text":"via nats"}"#],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains(r#""type":"Response""#), "{stdout}");
        assert!(stdout.contains("via nats"), "{stdout}");
    }
    // A refusal is an Error: exit 1.
    let output = send_nats(&served, &url, "beside.requests", &["no.such"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("handler_not_found"));
    // The TLS listener serves too.
    assert!(std::net::TcpStream::connect(served.addr).is_ok());
    served.signal("TERM");
    assert!(served.wait_exit().success());
}

#[test]
fn serve_with_nats_alone_listens_on_no_port_and_stops_cleanly() {
    let mut broker = Broker::start();
    let url = broker.url();
    let admin = free_port();
    let mut served = start_config(|text| {
        *text = text.replace("[server]\n", "[server]\nenabled = false\n");
        text.push_str(&nats_section(&url, "alone"));
        text.push_str(&format!("\n[admin]\nlisten = \"{admin}\"\n"));
    });
    let output = first_answer(&served, &url, "alone.requests", &["demo.echo", "[1,2]"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(served.addr).is_err(),
        "no listener"
    );
    // The admin endpoint reports the ingress, and readiness follows the
    // broker connection.
    assert_eq!(
        http_get(admin, "/readyz"),
        Some((200, "ready\n".to_owned()))
    );
    let (_, metrics) = http_get(admin, "/metrics").unwrap();
    assert_eq!(metric(&metrics, "mcp_nats_connected "), 1.0);
    assert!(metric(&metrics, "mcp_nats_received_total ") >= 1.0);
    assert!(metric(&metrics, "mcp_nats_published_total ") >= 1.0);
    broker.kill();
    let until = Instant::now() + Duration::from_secs(20);
    while http_get(admin, "/readyz").map(|(status, _)| status) != Some(503) {
        assert!(Instant::now() < until, "still ready without a broker");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = http_get(admin, "/readyz").unwrap();
    assert_eq!(body, "not ready: not connected to the NATS broker\n");
    let (_, metrics) = http_get(admin, "/metrics").unwrap();
    assert_eq!(metric(&metrics, "mcp_nats_connected "), 0.0);
    // The broker back on its port: ready again once reconnected.
    let _broker = Broker::start_on(broker.port());
    let until = Instant::now() + Duration::from_secs(30);
    while http_get(admin, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(
            Instant::now() < until,
            "not ready again after the broker came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = http_get(admin, "/metrics").unwrap();
    assert!(metric(&metrics, "mcp_nats_reconnects_total ") >= 1.0);
    served.signal("TERM");
    assert!(served.wait_exit().success());
    // With the engine gone, a request times out: exit 2, said on stderr.
    let output = send_nats(&served, &url, "alone.requests", &["demo.echo"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("NATS request"));
}

#[test]
fn serve_refuses_a_broker_it_cannot_reach() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut served = start_config(|text| text.push_str(&nats_section(&url, "none")));
    let status = served.wait_exit();
    assert_eq!(status.code(), Some(2));
}
