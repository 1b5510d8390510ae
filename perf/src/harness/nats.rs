//! The NATS run (feature `nats`): engines in this process, each behind its
//! NATS ingress in one queue group, loaded through a broker (a
//! `nats-server` this run starts on a free loopback port, or `--addr`).
//!
//! The load generator is two threads, as in the network modes: the sender
//! paces the messages into a channel, and one thread runs the clients on a
//! one-thread tokio runtime: it publishes each message with a reply
//! subject that names it (`<inbox>.<index>`) and times each reply by that
//! subject. The broker is another process: its CPU is not in the engine's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use mcp_engine::client::{Credentials, Envelopes};
use mcp_engine::config::NatsConfig;
use mcp_engine::engine::Engine;
use mcp_engine::nats::local_broker::LocalBroker;
use mcp_engine::nats::{NatsIngress, read_envelope};
use mcp_engine::{Config, Error};

use super::inproc::{
    ENGINE_THREADS, LOAD_THREADS, drive, engine_cpu, processing_p99, settle, start_engine,
};
use super::net::{network, reply_code};
use super::report::{Figures, measure};
use super::workload::{Messages, Prepared};
use super::{Plan, Recorder};
use crate::process;

/// The ingress's thread, counted with the engine's.
const INGRESS_THREAD: &str = "mcp-nats";

/// Where the broker is.
#[derive(Debug)]
pub enum NatsBroker {
    /// A `nats-server` started by this run on a free loopback port.
    Own,
    /// A running broker.
    Url(String),
}

/// Runs `messages` over `connections` NATS connections to `engines`
/// engines (with `config`, plus a `[nats]` section for the broker) in one
/// queue group.
pub fn run_nats(
    broker: &NatsBroker,
    mut config: Config,
    credentials: &Credentials,
    messages: impl Into<Messages>,
    plan: &Plan,
    connections: usize,
    engines: usize,
) -> Result<Figures, Error> {
    let messages = messages.into();
    let own_broker = match broker {
        NatsBroker::Own => Some(LocalBroker::start(&[])?),
        NatsBroker::Url(_) => None,
    };
    let url = match (broker, &own_broker) {
        (NatsBroker::Url(url), _) => url.clone(),
        (NatsBroker::Own, Some(own)) => own.url(),
        (NatsBroker::Own, None) => return Err(network("broker", "none")),
    };
    let nats = NatsConfig::with_urls([url.clone()]);
    let subject = nats.subject.clone();
    config.nats = Some(nats);
    let mut running: Vec<(Arc<Engine>, NatsIngress)> = Vec::with_capacity(engines);
    for _ in 0..engines.max(1) {
        let engine = Arc::new(start_engine(config.clone())?);
        let ingress = NatsIngress::start(Arc::clone(&engine), &config)?;
        running.push((engine, ingress));
    }

    // Each message as it goes on the wire: its codec byte, then the
    // envelope (docs/scaling.md), made before the clock starts (those made
    // while the run goes come with it).
    let mut prepared = match messages {
        Messages::Pool(pool) => Messages::Pool(
            pool.into_iter()
                .map(|message| {
                    let mut body = Vec::with_capacity(message.body.len() + 1);
                    body.push(message.codec.byte());
                    body.extend_from_slice(&message.body);
                    Prepared { body, ..message }
                })
                .collect(),
        ),
        made @ Messages::Made(_) => made,
    };
    let recorder = Arc::new(prepared.recorder(plan));
    let (to_clients, batches) =
        tokio::sync::mpsc::unbounded_channel::<Vec<(usize, usize, Bytes)>>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let clients = {
        let recorder = Arc::clone(&recorder);
        let credentials = credentials.clone();
        let url = url.clone();
        std::thread::Builder::new()
            .name("bench-nats".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(network("runtime", e)));
                        return;
                    }
                };
                runtime.block_on(send_and_time(
                    url,
                    subject,
                    connections.max(1),
                    recorder,
                    credentials,
                    batches,
                    ready_tx,
                ));
            })
            .map_err(|e| network("thread", e))?
    };
    ready_rx
        .recv()
        .map_err(|_| network("clients", "ended while connecting"))??;

    let engine_threads: Vec<&str> = ENGINE_THREADS
        .iter()
        .copied()
        .chain([INGRESS_THREAD])
        .collect();
    let engine_cpu = || engine_cpu(running.iter().map(|(engine, _)| &**engine), &engine_threads);
    let mut warm_cpu = 0.0;
    let mut warm_load = 0.0;
    let sent = drive(
        prepared.take(),
        plan,
        &recorder,
        |batch| {
            let batch = batch
                .drain(..)
                .map(|(index, message)| (index, message.lane, Bytes::from(message.body)))
                .collect();
            let _ = to_clients.send(batch);
        },
        || {
            for (engine, _) in &running {
                engine.reset_latencies();
            }
            warm_cpu = engine_cpu();
            warm_load = process::cpu_of_threads(LOAD_THREADS);
        },
    );
    let plan = &plan.measured(recorder.start().elapsed());
    let cpu = engine_cpu() - warm_cpu;
    let load = process::cpu_of_threads(LOAD_THREADS) - warm_load;
    // Messages still being made stop now, once their threads are counted.
    drop(prepared);
    let threads = process::threads("self");
    settle(&recorder, sent, Duration::from_secs(10));
    drop(to_clients);
    let _ = clients.join();
    let processing = running
        .first()
        .and_then(|(engine, _)| processing_p99(engine));
    let mut unpublished = 0;
    for (engine, ingress) in running {
        unpublished += ingress.shutdown().unpublished;
        engine.shutdown();
    }
    drop(own_broker);
    let mut figures = measure(&recorder, plan, cpu, threads, processing);
    figures.sender_cpu_share = Some(load / plan.duration.as_secs_f64().max(1e-9));
    if unpublished > 0 {
        figures
            .errors
            .insert("reply_unpublished".into(), unpublished);
    }
    Ok(figures)
}

/// The client thread: connects, then publishes each batch the sender
/// hands over (round robin over the connections) until the sender is done,
/// while each connection's inbox subscription times the replies.
async fn send_and_time(
    url: String,
    subject: String,
    connections: usize,
    recorder: Arc<Recorder>,
    credentials: Credentials,
    mut batches: tokio::sync::mpsc::UnboundedReceiver<Vec<(usize, usize, Bytes)>>,
    ready: std::sync::mpsc::Sender<Result<(), Error>>,
) {
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let connected = async {
            let client = async_nats::connect(url.as_str())
                .await
                .map_err(|e| network("NATS", e))?;
            let inbox = client.new_inbox();
            let replies = client
                .subscribe(format!("{inbox}.*"))
                .await
                .map_err(|e| network("NATS subscribe", e))?;
            client.flush().await.map_err(|e| network("NATS", e))?;
            let envelopes = Envelopes::from_credentials(&credentials, "admin")?;
            Ok::<_, Error>((client, inbox, replies, envelopes))
        }
        .await;
        match connected {
            Ok((client, inbox, replies, mut envelopes)) => {
                let recorder = Arc::clone(&recorder);
                tokio::spawn(async move {
                    let mut replies = replies;
                    while let Some(reply) = replies.next().await {
                        let index = reply
                            .subject
                            .rsplit('.')
                            .next()
                            .and_then(|token| token.parse::<usize>().ok());
                        let Some(index) = index else { continue };
                        let Ok((codec, body)) = read_envelope(None, &reply.payload) else {
                            continue;
                        };
                        let code = reply_code(&mut envelopes, codec, body);
                        recorder.answered(index, code);
                    }
                });
                clients.push((client, inbox));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    let subject = async_nats::Subject::from(subject);
    while let Some(batch) = batches.recv().await {
        for (index, lane, body) in batch {
            let Some((client, inbox)) = clients.get(lane % clients.len()) else {
                continue;
            };
            let reply = format!("{inbox}.{index}");
            let _ = client
                .publish_with_reply(subject.clone(), reply, body)
                .await;
        }
    }
    for (client, _) in &clients {
        let _ = client.flush().await;
    }
}
