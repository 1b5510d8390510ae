//! A `nats-server` on loopback, for the tests and the harness: Debian's
//! package, started on a free port and killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Code, Error};

/// How long a started broker may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nats-server` child process, killed when dropped.
#[derive(Debug)]
pub struct LocalBroker {
    child: Option<Child>,
    port: u16,
}

impl LocalBroker {
    /// A broker on a free loopback port, with more of `nats-server`'s
    /// flags (credentials, TLS, a config file).
    pub fn start(flags: &[&str]) -> Result<LocalBroker, Error> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| failed("no free port", &e))?
            .port();
        LocalBroker::start_on(port, flags)
    }

    /// A broker on `port` (a restarted one takes its old port).
    pub fn start_on(port: u16, flags: &[&str]) -> Result<LocalBroker, Error> {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed("cannot run it (Debian's package is nats-server)", &e))?;
        let broker = LocalBroker {
            child: Some(child),
            port,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if start.elapsed() > LISTEN_TIMEOUT {
                return Err(failed("did not listen", &addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (as a crash would) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn failed(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::new(Code::NetworkError, format!("nats-server: {what}: {e}"))
}
