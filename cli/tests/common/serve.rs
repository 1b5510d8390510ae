//! Starting the real `mcp-engine serve` binary and talking to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mcp_engine::client::{Client, ClientReply, Connector, Credentials, Envelopes, Outgoing};
use mcp_engine::codec::Codec;
use mcp_engine::{RawJson, SecurityLevel};

pub const WAIT: Duration = Duration::from_secs(20);

/// A running server process, killed when dropped.
pub struct Served {
    pub child: Child,
    pub credentials: Credentials,
    pub addr: SocketAddr,
    /// The dev setup's folder (holds engine.toml, keys, ca.pem).
    pub dir: PathBuf,
    _scratch: tempfile::TempDir,
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-engine"));
    command.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    command
}

/// `serve` in dev mode on a free port.
pub fn serve_dev() -> Served {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("credentials.json");
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--dev-credentials"])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let credentials = Credentials::parse(&line).unwrap();
    // The file says the same as the line.
    assert_eq!(
        Credentials::load(&file).unwrap().addr,
        credentials.addr,
        "--dev-credentials file"
    );
    let dir = credentials
        .ca_cert
        .as_ref()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    Served {
        addr: credentials.addr.parse().unwrap(),
        child,
        credentials,
        dir,
        _scratch: scratch,
    }
}

/// `serve --config` on a dev setup whose engine.toml `edit` changes, once
/// it listens.
pub fn serve_config(edit: impl FnOnce(&mut String)) -> Served {
    let served = start_config(edit);
    let until = Instant::now() + WAIT;
    while std::net::TcpStream::connect(served.addr).is_err() {
        assert!(Instant::now() < until, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    served
}

/// `serve --config` on a dev setup whose engine.toml `edit` changes,
/// started and not waited for.
pub fn start_config(edit: impl FnOnce(&mut String)) -> Served {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("dev");
    let status = binary()
        .args(["dev-config", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = dir.join("engine.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    edit(&mut text);
    std::fs::write(&config, text).unwrap();
    let addr = free_port();
    let mut credentials = Credentials::load(&dir.join("credentials.json")).unwrap();
    credentials.addr = addr.to_string();
    let child = binary()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Served {
        addr,
        child,
        credentials,
        dir: dir.canonicalize().unwrap(),
        _scratch: scratch,
    }
}

pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl Served {
    /// The admin endpoint dev mode names in its credentials.
    pub fn admin_addr(&self) -> SocketAddr {
        let url = self
            .credentials
            .admin
            .as_deref()
            .expect("dev mode names its admin endpoint");
        url.strip_prefix("http://").unwrap().parse().unwrap()
    }

    pub fn connect(&self) -> Client {
        Connector::from_credentials(&self.credentials)
            .unwrap()
            .connect()
            .unwrap()
    }

    pub fn envelopes(&self, role: &str) -> Envelopes {
        Envelopes::from_credentials(&self.credentials, role).unwrap()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("engine.toml")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's reply, whether it came correlated or not.
pub fn reply_to(client: &Client, request: &Outgoing) -> ClientReply {
    let waiter = client.request(request).unwrap();
    let until = Instant::now() + WAIT;
    loop {
        if let Ok(reply) = waiter.wait(Duration::from_millis(20)) {
            return reply;
        }
        if let Some(reply) = client.next_unmatched(Duration::from_millis(20)) {
            return reply;
        }
        assert!(Instant::now() < until, "no reply to {}", request.id);
    }
}

/// The code of an Error reply, or "Response".
pub fn outcome(envelopes: &mut Envelopes, reply: &ClientReply) -> String {
    let opened = envelopes.open(reply.codec, &reply.body).unwrap();
    if opened.is_error() {
        let payload: serde_json::Value =
            serde_json::from_str(opened.message.payload.as_str()).unwrap();
        payload["code"].as_str().unwrap().to_owned()
    } else {
        "Response".to_owned()
    }
}

/// A Command at `level` (JSON) with `args`.
pub fn command(
    envelopes: &mut Envelopes,
    level: SecurityLevel,
    name: &str,
    args: Option<&str>,
) -> Outgoing {
    let args = args.map(|a| RawJson::parse(a).unwrap());
    envelopes
        .command(Codec::Json, level, name, args.as_ref())
        .unwrap()
}

/// `GET path` over plain HTTP/1.0 (so never chunked), to the admin
/// endpoint or Prometheus's API: the status and the body, or `None` if
/// nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut peer = std::net::TcpStream::connect(addr).ok()?;
    peer.set_read_timeout(Some(WAIT)).ok()?;
    peer.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    peer.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    Some((status, response.split_once("\r\n\r\n")?.1.to_owned()))
}

/// The value of the sample that `line_start` (name and labels) begins in
/// a Prometheus text exposition.
pub fn metric(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
}
