//! The admin endpoint against well-formed and hostile peers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AdminLimits, AdminServer, AdminSource, METRICS_CONTENT_TYPE, Readiness};

/// Serves one gauge; ready unless `draining`.
#[derive(Default)]
struct Source {
    draining: AtomicBool,
}

impl AdminSource for Source {
    fn write_metrics(&self, out: &mut String) {
        out.push_str("# HELP mcp_up Whether the engine runs.\n# TYPE mcp_up gauge\nmcp_up 1\n");
    }

    fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Relaxed) {
            Readiness::NotReady("shutting down".to_owned())
        } else {
            Readiness::Ready
        }
    }
}

/// Far longer than any answer takes: a peer that waits this long was
/// never answered.
const PATIENCE: Duration = Duration::from_secs(30);

fn start(limits: AdminLimits) -> (AdminServer, Arc<Source>) {
    let source = Arc::new(Source::default());
    let admin = AdminServer::start(
        "127.0.0.1:0".parse().unwrap(),
        limits,
        Arc::clone(&source) as Arc<dyn AdminSource>,
    )
    .unwrap();
    (admin, source)
}

/// Sends `request` and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.write_all(request).unwrap();
    let mut response = Vec::new();
    peer.read_to_end(&mut response).unwrap();
    String::from_utf8(response).unwrap()
}

fn status_of(response: &str) -> &str {
    response.get(9..12).unwrap_or_default()
}

#[test]
fn each_path_gets_its_answer() {
    let (admin, source) = start(AdminLimits::default());
    let addr = admin.local_addr();
    let metrics = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    );
    assert_eq!(status_of(&metrics), "200", "{metrics}");
    assert!(metrics.contains(&format!("Content-Type: {METRICS_CONTENT_TYPE}\r\n")));
    assert!(metrics.contains(
        "\r\n\r\n# HELP mcp_up Whether the engine runs.\n# TYPE mcp_up gauge\nmcp_up 1\n"
    ));
    // The endpoint counts itself after the source: nothing answered yet.
    assert!(
        metrics.ends_with("\nmcp_admin_timed_out_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nmcp_admin_responses_total 0\n"),
        "{metrics}"
    );
    assert!(exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").ends_with("\r\n\r\nok\n"));
    assert!(exchange(addr, b"GET /readyz HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nready\n"));
    source.draining.store(true, Ordering::Relaxed);
    let draining = exchange(addr, b"GET /readyz HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&draining), "503");
    assert!(draining.ends_with("not ready: shutting down\n"));
    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&head), "200");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD response has no body: {head}"
    );
    assert_eq!(
        status_of(&exchange(addr, b"GET /stats HTTP/1.1\r\n\r\n")),
        "404"
    );
    let post = exchange(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&post), "405");
    assert!(post.contains("Allow: GET, HEAD\r\n"));
    assert_eq!(admin.stats().responses, 7);
    admin.stop();
}

#[test]
fn a_request_whose_sender_closed_its_side_is_answered() {
    let (admin, _source) = start(AdminLimits::default());
    let mut peer = TcpStream::connect(admin.local_addr()).unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = String::new();
    peer.read_to_string(&mut response).unwrap();
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
    // Half a head and then the close: closed without an answer.
    let mut peer = TcpStream::connect(admin.local_addr()).unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.write_all(b"GET /heal").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(admin.stats().responses, 1);
    admin.stop();
}

#[test]
fn garbage_and_oversized_heads_are_refused_and_the_endpoint_goes_on() {
    let (admin, _source) = start(AdminLimits::default());
    let addr = admin.local_addr();
    assert_eq!(
        status_of(&exchange(
            addr,
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
        )),
        "400"
    );
    assert_eq!(status_of(&exchange(addr, b"GET / HTTP/9\r\n\r\n")), "400");
    // A head that never ends, past the size limit: refused at the limit,
    // not read on.
    let mut endless = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    endless.resize(AdminLimits::default().max_head_bytes + 100, b'a');
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = peer.write_all(&endless);
    let mut response = Vec::new();
    let _ = peer.read_to_end(&mut response);
    assert_eq!(status_of(&String::from_utf8_lossy(&response)), "431");
    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for n in 0..100 {
        many.extend_from_slice(format!("X-{n}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status_of(&exchange(addr, &many)), "431");
    assert_eq!(
        status_of(&exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n")),
        "200"
    );
    admin.stop();
}

#[test]
fn a_peer_that_sends_slowly_is_closed_at_the_timeout() {
    let limits = AdminLimits {
        timeout: Duration::from_millis(300),
        ..AdminLimits::default()
    };
    let (admin, _source) = start(limits);
    let mut slow = TcpStream::connect(admin.local_addr()).unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let began = Instant::now();
    let mut rest = Vec::new();
    // Closed by the server (end of stream or a reset), not by our patience.
    match slow.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "answered a head that never came whole"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "never closed"),
    }
    assert!(began.elapsed() < PATIENCE);
    assert_eq!(admin.stats().timed_out, 1);
    admin.stop();
}

#[test]
fn a_thousand_idle_connections_hold_nothing_past_the_limits() {
    let _ = rlimit::increase_nofile_limit(4096);
    let limits = AdminLimits {
        max_connections: 64,
        timeout: Duration::from_millis(500),
        ..AdminLimits::default()
    };
    let (admin, _source) = start(limits);
    let addr = admin.local_addr();
    // They connect and send nothing: 64 at a time hold a slot until their
    // timeout; the others are closed as they are accepted.
    let idle: Vec<TcpStream> = (0..1_000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let began = Instant::now();
    let answered = loop {
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = peer.write_all(b"GET /healthz HTTP/1.1\r\n\r\n");
        let mut response = Vec::new();
        let _ = peer.read_to_end(&mut response);
        if response.ends_with(b"\r\n\r\nok\n") {
            break true;
        }
        if began.elapsed() > PATIENCE {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answered, "the endpoint stopped serving");
    // And each idle connection is closed by the server: refused as it was
    // accepted, or at its timeout once it held a slot.
    for mut peer in idle {
        peer.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut rest = Vec::new();
        match peer.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty()),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "an idle connection was held past its timeout"
            ),
        }
    }
    let stats = admin.stats();
    assert!(stats.refused + stats.timed_out >= 1_000, "{stats:?}");
    admin.stop();
}
