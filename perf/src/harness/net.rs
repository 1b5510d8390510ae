//! The network runs: the same messages over TCP or TLS 1.3, to a server
//! this process starts (so its threads' CPU can be read) or to a running
//! one (`--addr`).
//!
//! One thread paces the sends over the connections in turn; one collector
//! drains every connection's replies and maps each correlation id back to
//! its message. The client library's own thread per connection does the
//! socket and TLS work.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_engine::client::{Client, ClientReply, Connector, Credentials, Envelopes};
use mcp_engine::codec::Codec;
use mcp_engine::frame::write_frame;
use mcp_engine::server::Server;
use mcp_engine::{Code, Config, Error};

use super::inproc::{ENGINE_THREADS, drive, settle, start_engine};
use super::report::{Figures, measure};
use super::workload::Prepared;
use super::{Plan, Recorder};
use crate::process;

/// Where the network run sends.
#[derive(Debug)]
pub enum NetTarget {
    /// A server started in this process on a free loopback port, with the
    /// run's config.
    Own {
        /// TLS 1.3 (else plain TCP).
        tls: bool,
    },
    /// A running server, reached as its credentials say.
    Addr {
        /// Its address.
        addr: SocketAddr,
    },
}

/// Runs `messages` over `connections` connections to `target`.
/// `credentials` reach the server (CA, server name) and `config` is what an
/// own server runs.
pub fn run_net(
    target: &NetTarget,
    mut config: Config,
    credentials: &Credentials,
    messages: Vec<Prepared>,
    plan: &Plan,
    connections: usize,
) -> Result<Figures, Error> {
    let own = match target {
        NetTarget::Own { tls } => {
            config.server.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
            if !tls {
                config.server.tls = None;
                config.server.plain_tcp = true;
            }
            // The run's load, not a limit of the default config, decides.
            config.server.max_connections =
                config.server.max_connections.max(connections as u64 + 16);
            let engine = Arc::new(start_engine(config.clone())?);
            Some(Server::start(engine, &config)?)
        }
        NetTarget::Addr { .. } => None,
    };
    let connector = match (target, &own) {
        (NetTarget::Own { tls: false }, Some(server)) => Connector::plain(server.local_addr()),
        (NetTarget::Own { tls: true }, Some(server)) => {
            let mut reach = credentials.clone();
            reach.addr = server.local_addr().to_string();
            reach.tls = true;
            Connector::from_credentials(&reach)?
        }
        (NetTarget::Addr { addr }, _) => {
            let mut reach = credentials.clone();
            reach.addr = addr.to_string();
            Connector::from_credentials(&reach)?
        }
        _ => return Err(Error::new(Code::InternalError, "no server to reach")),
    };
    let clients: Vec<Client> = (0..connections.max(1))
        .map(|_| connector.connect())
        .collect::<Result<_, _>>()?;
    let clients = Arc::new(clients);

    // Which message each id is, made before the clock starts.
    let index_of: HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(index, message)| (message.id.clone(), index))
        .collect();
    let frames: Vec<Prepared> = messages
        .into_iter()
        .map(|message| {
            let mut frame = Vec::with_capacity(message.body.len() + mcp_engine::frame::HEADER_LEN);
            write_frame(&mut frame, message.codec, &message.body).map_err(|e| {
                Error::new(Code::MessageTooLarge, e.to_error().message().to_owned())
            })?;
            Ok(Prepared {
                id: message.id,
                codec: message.codec,
                body: frame,
            })
        })
        .collect::<Result<_, Error>>()?;

    let recorder = Arc::new(Recorder::new(frames.len(), Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let clients = Arc::clone(&clients);
        let recorder = Arc::clone(&recorder);
        let stop = Arc::clone(&stop);
        let mut envelopes = Envelopes::from_credentials(credentials, "admin")?;
        std::thread::Builder::new()
            .name("bench-collect".into())
            .spawn(move || collect(&clients, &recorder, &index_of, &stop, &mut envelopes))
            .map_err(|e| Error::new(Code::InternalError, format!("thread: {e}")))?
    };

    let measured_here = own.is_some();
    let mut warm_cpu = 0.0;
    let mut send_failures = 0u64;
    let sent = drive(
        frames,
        plan,
        &recorder,
        |index, frame| {
            if let Some(client) = clients.get(index % clients.len())
                && client.send_raw(&frame.body).is_err()
            {
                send_failures += 1;
            }
        },
        || {
            if let Some(server) = &own {
                server.engine().reset_latencies();
            }
            warm_cpu = process::cpu_of_threads(ENGINE_THREADS);
        },
    );
    let plan = &plan.measured(recorder.start().elapsed());
    let cpu = process::cpu_of_threads(ENGINE_THREADS) - warm_cpu;
    let threads = process::threads("self");
    settle(&recorder, sent, Duration::from_secs(10));
    stop.store(true, Ordering::Release);
    let _ = collector.join();
    let processing = own.as_ref().and_then(|server| {
        server
            .engine()
            .metrics()
            .latencies
            .iter()
            .find(|l| l.stage == mcp_engine::engine::Stage::Total)
            .map(|l| l.p99_ns)
    });
    drop(clients);
    if let Some(server) = own {
        server.shutdown();
    }
    let mut figures = measure(
        &recorder,
        plan,
        sent,
        if measured_here { cpu } else { f64::NAN },
        threads,
        processing,
    );
    if !measured_here {
        figures.cpu_share = None;
        figures.cpu_us_per_msg = None;
    }
    if send_failures > 0 {
        figures.errors.insert("send_failed".into(), send_failures);
    }
    Ok(figures)
}

/// Drains every connection's replies until `stop`, recording each against
/// its message.
fn collect(
    clients: &[Client],
    recorder: &Recorder,
    index_of: &HashMap<String, usize>,
    stop: &AtomicBool,
    envelopes: &mut Envelopes,
) {
    while !stop.load(Ordering::Acquire) {
        let mut idle = true;
        for client in clients {
            while let Some(reply) = client.next_unmatched(Duration::ZERO) {
                idle = false;
                record(&reply, recorder, index_of, envelopes);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn record(
    reply: &ClientReply,
    recorder: &Recorder,
    index_of: &HashMap<String, usize>,
    envelopes: &mut Envelopes,
) {
    let Some(index) = reply
        .correlation_id
        .as_deref()
        .and_then(|id| index_of.get(id))
    else {
        return;
    };
    // Only an Error needs opening (for its code): a JSON reply says so in
    // plain text; a binary one is opened.
    let maybe_error = match reply.codec {
        Codec::Json => contains(&reply.body, br#""type":"Error""#),
        Codec::Binary => true,
    };
    let code = if maybe_error {
        match envelopes.open(reply.codec, &reply.body) {
            Ok(opened) if opened.is_error() => {
                Some(error_code(&opened).unwrap_or(Code::InternalError))
            }
            Ok(_) => None,
            Err(e) => Some(e.code()),
        }
    } else {
        None
    };
    recorder.answered(*index, code);
}

/// The `code` of an opened Error's payload.
fn error_code(opened: &mcp_engine::client::Opened) -> Option<Code> {
    let value: serde_json::Value = serde_json::from_str(opened.message.payload.as_str()).ok()?;
    let code = value.get("code")?.as_str()?;
    Code::ALL.iter().copied().find(|c| c.as_str() == code)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
