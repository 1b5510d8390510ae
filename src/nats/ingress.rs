//! The ingress's thread: the client's loop, on a one-thread runtime.
//!
//! The loop owns the table of messages in the engine (tag to reply
//! subject), so that no lock is shared with the workers: they only push
//! `(tag, reply bytes)` into a channel as large as the in-flight window,
//! which therefore never refuses them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, ServerAddr, Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::IngressCounters;
use super::binding::{self, CODEC_HEADER, Framing};
use super::connect;
use crate::codec::{Codec, Decoder, Limits};
use crate::config::NatsConfig;
use crate::engine::{Engine, Reply, SinkId, Submission};
use crate::error::{Code, Error};
use crate::transport_error::TransportErrors;

/// Messages handed to the engine in one `submit_batch` at most.
const BURST: usize = 64;
/// Replies taken from the workers' channel at once.
const REPLY_BURST: usize = 256;
/// How long shutdown waits for the client to write what it holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a reply may wait for room in the client's buffer (full while
/// the broker is away) before it is counted unpublished. While draining,
/// the drain's deadline is the limit instead.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the thread needs.
pub(super) struct Setup {
    pub(super) config: NatsConfig,
    pub(super) engine: Arc<Engine>,
    pub(super) counters: Arc<IngressCounters>,
    pub(super) peer: IpAddr,
    pub(super) max_message_size: usize,
}

/// A reply as a worker hands it over: the codec byte, then the envelope;
/// empty when nothing is to be sent back.
struct Replied {
    tag: u64,
    bytes: Vec<u8>,
}

/// Where a message in the engine is to be answered.
struct Pending {
    reply: Option<Subject>,
    framing: Framing,
}

/// Which subscription a message came from.
#[derive(Clone, Copy)]
enum Route {
    Requests,
    Events,
}

/// Runs the ingress on a runtime of its own until `stop`, after telling
/// `ready` whether it connected.
pub(super) fn run_on_own_runtime(
    setup: Setup,
    ready: std::sync::mpsc::Sender<Result<(), Error>>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error::new(
                Code::InternalError,
                format!("cannot start the NATS runtime: {e}"),
            )));
            return;
        }
    };
    runtime.block_on(async move {
        match Ingress::connect(setup).await {
            Ok(ingress) => {
                let _ = ready.send(Ok(()));
                ingress.serve(stop).await;
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    });
}

struct Ingress {
    setup: Setup,
    client: Client,
    requests: Subscriber,
    events: Subscriber,
    replies: mpsc::Receiver<Replied>,
    sink: SinkId,
    pending: HashMap<u64, Pending, foldhash::fast::FixedState>,
    next_tag: u64,
    batch: Vec<Submission>,
    errors: TransportErrors,
    /// Reads the id of a body refused here, for its Error's correlation.
    names: Decoder,
    max_in_flight: usize,
    /// Set by shutdown: when it stops waiting for replies.
    deadline: Option<Instant>,
}

impl Ingress {
    async fn connect(setup: Setup) -> Result<Ingress, Error> {
        let config = &setup.config;
        let options = connect::options(config, Arc::clone(&setup.counters)).await?;
        let addrs = config
            .urls
            .iter()
            .map(|url| {
                url.parse::<ServerAddr>().map_err(|e| {
                    Error::new(Code::ConfigurationError, format!("`nats.urls`: {url}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::new(
                Code::Unavailable,
                format!("NATS at {}: {e}", config.urls.join(", ")),
            )
        };
        let client = options.connect(addrs).await.map_err(|e| unreachable(&e))?;
        let subscribe =
            |subject: &str| client.queue_subscribe(subject.to_owned(), config.queue_group.clone());
        let requests = subscribe(&config.subject)
            .await
            .map_err(|e| unreachable(&e))?;
        let events = subscribe(&config.events_subject)
            .await
            .map_err(|e| unreachable(&e))?;
        // The broker knows the subscriptions once this returns: a request
        // sent after `start` finds this engine.
        client.flush().await.map_err(|e| unreachable(&e))?;

        let max_in_flight = usize::try_from(config.max_in_flight).unwrap_or(usize::MAX);
        let (handover, replies) = mpsc::channel(max_in_flight.max(1));
        let counters = Arc::clone(&setup.counters);
        let sink = setup.engine.register_sink(move |reply: Reply<'_>| {
            let bytes = if reply.body.is_empty() {
                Vec::new()
            } else {
                binding::reply_with_codec_byte(reply.codec, reply.body)
            };
            let replied = Replied {
                tag: reply.tag,
                bytes,
            };
            match handover.try_send(replied) {
                Ok(()) => {}
                // Shutdown gave up waiting for this one: counted then, as
                // abandoned.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
                // Never, while the window bounds what is in the engine.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    IngressCounters::add(&counters.unpublished);
                    tracing::error!("NATS: the reply channel was full; a reply is lost");
                }
            }
        });
        tracing::info!(
            urls = %config.urls.join(", "),
            subject = %config.subject,
            events = %config.events_subject,
            group = %config.queue_group,
            "NATS ingress serving"
        );
        Ok(Ingress {
            client,
            requests,
            events,
            replies,
            sink,
            pending: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            next_tag: 0,
            batch: Vec::with_capacity(BURST),
            errors: TransportErrors::new(),
            names: Decoder::new(Limits {
                max_message_size: setup.max_message_size,
                ..Limits::default()
            }),
            max_in_flight,
            deadline: None,
            setup,
        })
    }

    /// Serves until `stop`, then drains: unsubscribes, takes what the
    /// broker had sent, and waits (up to `drain_timeout_ms`) for the
    /// replies of everything taken.
    async fn serve(mut self, mut stop: oneshot::Receiver<()>) {
        let mut requests_open = true;
        let mut events_open = true;
        let mut replied = Vec::with_capacity(REPLY_BURST);
        loop {
            let draining = self.deadline.is_some();
            if draining && !requests_open && !events_open && self.pending.is_empty() {
                break;
            }
            let deadline = self.deadline;
            tokio::select! {
                biased;
                _ = &mut stop, if !draining => {
                    let drain = Duration::from_millis(self.setup.config.drain_timeout_ms);
                    self.deadline = Some(Instant::now() + drain);
                    // A drain that fails (or cannot be sent while the
                    // broker is away) leaves the subscription to end with
                    // the client.
                    let left = self.time_left();
                    if !matches!(tokio::time::timeout(left, self.requests.drain()).await, Ok(Ok(()))) {
                        requests_open = false;
                    }
                    let left = self.time_left();
                    if !matches!(tokio::time::timeout(left, self.events.drain()).await, Ok(Ok(()))) {
                        events_open = false;
                    }
                }
                taken = self.replies.recv_many(&mut replied, REPLY_BURST) => {
                    if taken == 0 {
                        break;
                    }
                    self.publish_replies(&mut replied).await;
                }
                message = self.requests.next(), if requests_open => {
                    requests_open = self.take_burst(message, Route::Requests).await;
                }
                message = self.events.next(), if events_open => {
                    events_open = self.take_burst(message, Route::Events).await;
                }
                // Built lazily: while serving, no clock read and no timer
                // per turn of the loop.
                () = async {
                    if let Some(deadline) = deadline {
                        tokio::time::sleep_until(deadline).await;
                    }
                }, if draining => break,
            }
        }
        let abandoned = u64::try_from(self.pending.len()).unwrap_or(u64::MAX);
        if abandoned > 0 {
            self.setup
                .counters
                .abandoned
                .fetch_add(abandoned, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                abandoned,
                "NATS ingress stopped with messages still in the engine; their replies are dropped"
            );
        }
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await;
        tracing::info!(sink = self.sink.index(), "NATS ingress stopped");
    }

    /// How long a step may still wait: until the drain's deadline while
    /// draining, else [`PUBLISH_TIMEOUT`].
    fn time_left(&self) -> Duration {
        self.deadline.map_or(PUBLISH_TIMEOUT, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        })
    }

    /// Takes `first` and whatever else the subscription already holds (up
    /// to a burst), then hands them to the engine in one batch. Returns
    /// whether the subscription is still open.
    async fn take_burst(&mut self, first: Option<Message>, route: Route) -> bool {
        let Some(first) = first else {
            return false;
        };
        self.take(first, route).await;
        let mut open = true;
        while self.batch.len() < BURST {
            let subscription = match route {
                Route::Requests => &mut self.requests,
                Route::Events => &mut self.events,
            };
            match subscription.next().now_or_never() {
                Some(Some(message)) => self.take(message, route).await,
                Some(None) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        self.setup.engine.submit_batch(self.batch.drain(..));
        open
    }

    /// Reads one message and queues it for the engine, or answers it here.
    async fn take(&mut self, message: Message, route: Route) {
        IngressCounters::add(&self.setup.counters.received);
        let reply = match route {
            Route::Requests => message.reply.clone(),
            Route::Events => None,
        };
        let header = binding::codec_header(message.headers.as_ref());
        let body = match binding::read_body(header, &message.payload, self.setup.max_message_size) {
            Ok(body) => body,
            Err(error) => {
                IngressCounters::add(&self.setup.counters.malformed);
                let framing = if header.is_some() {
                    Framing::Header
                } else {
                    Framing::BareJson
                };
                self.answer_here(reply, framing, &error, None).await;
                return;
            }
        };
        if self.pending.len() >= self.max_in_flight {
            IngressCounters::add(&self.setup.counters.refused_at_window);
            let full = Error::new(
                Code::ResourceExhausted,
                "too many messages in flight at this engine; retry",
            );
            let framing = body.framing;
            // The body was read: its Error names it, if it can be named.
            let id = self.names.readable_id(body.codec, body.envelope);
            self.answer_here(reply, framing, &full, id.as_deref()).await;
            return;
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        // A requester's replies share an inbox prefix: its requests stay
        // on one worker, in order, and requesters spread over workers.
        let key = affinity(reply.as_deref().unwrap_or(&message.subject));
        self.batch.push(Submission {
            sink: self.sink,
            tag,
            peer: self.setup.peer,
            key,
            codec: body.codec,
            body: body.envelope.to_vec(),
        });
        self.pending.insert(
            tag,
            Pending {
                reply,
                framing: body.framing,
            },
        );
    }

    /// Answers a message the engine never saw with the ingress's own Error.
    async fn answer_here(
        &mut self,
        reply: Option<Subject>,
        framing: Framing,
        error: &Error,
        correlation_id: Option<&str>,
    ) {
        let Some(subject) = reply else {
            return;
        };
        let envelope = self.errors.envelope(error, correlation_id);
        let bytes = binding::reply_with_codec_byte(Codec::Json, envelope);
        self.publish(subject, framing, bytes).await;
    }

    async fn publish_replies(&mut self, replied: &mut Vec<Replied>) {
        for Replied { tag, bytes } in replied.drain(..) {
            let Some(pending) = self.pending.remove(&tag) else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            match pending.reply {
                Some(subject) => self.publish(subject, pending.framing, bytes).await,
                None => IngressCounters::add(&self.setup.counters.unanswerable),
            }
        }
    }

    /// Publishes a reply (`bytes`: the codec byte, then the envelope),
    /// framed as its request was.
    async fn publish(&self, subject: Subject, framing: Framing, bytes: Vec<u8>) {
        let codec = bytes
            .first()
            .copied()
            .and_then(Codec::from_byte)
            .unwrap_or(Codec::Json);
        let mut payload = Bytes::from(bytes);
        let _codec_byte = payload.split_to(binding::reply_skip(framing).min(payload.len()));
        let publishing = async {
            match framing {
                Framing::Header => {
                    let mut headers = HeaderMap::new();
                    headers.insert(CODEC_HEADER, binding::codec_name(codec));
                    self.client
                        .publish_with_headers(subject, headers, payload)
                        .await
                }
                Framing::CodecByte | Framing::BareJson => {
                    self.client.publish(subject, payload).await
                }
            }
        };
        // Almost always the client takes the reply at once: a timer only
        // for one that has to wait for room.
        let mut publishing = std::pin::pin!(publishing);
        let published = match publishing.as_mut().now_or_never() {
            Some(published) => Ok(published),
            None => tokio::time::timeout(self.time_left(), publishing).await,
        };
        match published {
            Ok(Ok(())) => IngressCounters::add(&self.setup.counters.published),
            Ok(Err(e)) => {
                IngressCounters::add(&self.setup.counters.unpublished);
                tracing::warn!(error = %e, "NATS: a reply could not be published");
            }
            Err(_) => {
                IngressCounters::add(&self.setup.counters.unpublished);
                tracing::warn!("NATS: a reply waited too long for the broker; not published");
            }
        }
    }
}

/// The worker key of a message: its reply subject up to the last token
/// (the requester's inbox), or its subject when it has no reply subject.
fn affinity(subject: &str) -> u64 {
    use std::hash::BuildHasher as _;
    let requester = subject.rsplit_once('.').map_or(subject, |(inbox, _)| inbox);
    foldhash::fast::FixedState::with_seed(0x6d63_702d_6e61_7473).hash_one(requester)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_requesters_inbox_keeps_one_key() {
        assert_eq!(affinity("_INBOX.abc.1"), affinity("_INBOX.abc.2"));
        assert_ne!(affinity("_INBOX.abc.1"), affinity("_INBOX.abd.1"));
        assert_eq!(affinity("plain"), affinity("plain"));
    }
}
