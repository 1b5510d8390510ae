//! [`Engine`], the running engine: it takes submissions, answers through
//! sinks, sends commands to peers, reloads its config, reports metrics and
//! shuts down. [`EngineBuilder`](super::EngineBuilder) starts it.

use std::net::IpAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::config::Config;
use crate::error::{Code, Error};
use crate::message::{Message, MessageType, unix_nanos_now};
use crate::security::SecurityState;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};

use super::audit_log::{AuditLog, AuditStats, keys_in_use, reload_event};
use super::call_sink::{CallSink, OwnedReply};
use super::caller_thread::{refuse, with_writer};
use super::concurrency::Seat;
use super::error_log::ErrorRecord;
use super::intake::Pass;
use super::lifecycle::Phase;
use super::metrics::MetricsSnapshot;
use super::outbound::PendingReply;
use super::shared::Shared;
use super::sink::{Destination, Outcome, ReplySink, SinkId};
use super::state::{ProtocolState, RecentMessage, Status};
use super::worker::Worker;
use super::worker_shared::Submission;

/// A running engine. Dropping it shuts it down.
pub struct Engine {
    pub(super) shared: Arc<Shared>,
    /// The workers' seats, by intake index (sharded topology only).
    pub(super) seats: Box<[Arc<Seat<Worker>>]>,
    pub(super) workers: Mutex<Vec<JoinHandle<()>>>,
    pub(super) timer: Mutex<Option<JoinHandle<()>>>,
    pub(super) calls: Arc<CallSink>,
    pub(super) call_sink: SinkId,
    pub(super) next_call: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.shared.workers_shared().len())
            .field("phase", &self.shared.phase())
            .finish()
    }
}

impl Engine {
    /// Registers a sink for replies; submissions name it by the returned id.
    pub fn register_sink(&self, sink: impl ReplySink) -> SinkId {
        self.shared.sinks.register(Arc::new(sink))
    }

    /// Hands a message to the engine. Its one reply goes to the sink the
    /// submission names, tagged with its tag. If the engine cannot take it
    /// (the worker's queue is full and overflow is `refuse`, or the engine
    /// is shutting down), that reply is an Error (`resource_exhausted` or
    /// `unavailable`), sent before this returns, and the code comes back
    /// here too.
    pub fn submit(&self, submission: Submission) -> Result<(), Code> {
        let index = self.intake_index(&submission);
        let Some(mut pass) = Pass::enter(&self.shared, &self.seats, index) else {
            return Err(refuse(&self.shared, submission, Code::Unavailable));
        };
        let taken = pass.submit(submission);
        // Out of the intake before answering a refusal.
        drop(pass);
        taken.map_err(|(submission, code)| refuse(&self.shared, submission, code))
    }

    /// Hands several messages to the engine, in order: the same as
    /// [`submit`](Self::submit) for each (each gets one reply through its
    /// sink, refusals included), but a run of consecutive messages bound
    /// for the same worker (the same key, such as a connection's frames)
    /// pays the intake's fixed costs once: its entry and exit, the clock
    /// and config reads, the worker's wake-up and the counters. Returns how
    /// many were accepted.
    ///
    /// ```
    /// use std::net::{IpAddr, Ipv4Addr};
    /// use std::sync::mpsc;
    /// use mcp_engine::codec::{self, Codec};
    /// use mcp_engine::engine::{Answer, EngineBuilder, Outcome, Reply, Request, Submission};
    /// use mcp_engine::{Config, Message, MessageType, RawJson, SecurityLevel};
    ///
    /// let mut config = Config::default();
    /// config.allow_anonymous(["demo:*"]); // no keys here
    /// let engine = EngineBuilder::new(config)
    ///     .command("demo.nop", |_: &Request<'_>| Ok(Answer::Result(RawJson::null())))
    ///     .start()?;
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let sink = engine.register_sink(move |reply: Reply<'_>| {
    ///     let _ = tx.lock().unwrap().send((reply.tag, reply.outcome));
    /// });
    ///
    /// // A connection's frames: one key, so one worker, in order.
    /// let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    /// let batch = (0..10u64).map(|tag| {
    ///     let payload = RawJson::parse(r#"{"command":"demo.nop"}"#).unwrap();
    ///     let message = Message::new(format!("m-{tag}"), MessageType::Command, SecurityLevel::Low, payload);
    ///     let mut body = Vec::new();
    ///     codec::json::encode(&message, &mut body);
    ///     Submission { sink, tag, peer, key: 7, codec: Codec::Json, body }
    /// });
    /// assert_eq!(engine.submit_batch(batch), 10);
    /// let mut replies: Vec<(u64, Outcome)> = (0..10).map(|_| rx.recv().unwrap()).collect();
    /// replies.sort_by_key(|(tag, _)| *tag);
    /// assert_eq!(replies, (0..10).map(|tag| (tag, Outcome::Response)).collect::<Vec<_>>());
    /// engine.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_batch(&self, submissions: impl IntoIterator<Item = Submission>) -> usize {
        let mut accepted = 0;
        let mut pass: Option<Pass<'_>> = None;
        for submission in submissions {
            let index = self.intake_index(&submission);
            if pass.as_ref().map(Pass::index) != Some(index) {
                // Leaves the last worker's intake before entering the next.
                drop(pass.take());
                pass = Pass::enter(&self.shared, &self.seats, index);
            }
            let taken = match pass.as_mut() {
                Some(pass) => pass.submit(submission),
                None => Err((submission, Code::Unavailable)),
            };
            match taken {
                Ok(()) => accepted += 1,
                Err((submission, code)) => {
                    // Out of the intake before answering, as `submit` is
                    // (a sink may take its time); the next message enters
                    // again.
                    drop(pass.take());
                    refuse(&self.shared, submission, code);
                }
            }
        }
        accepted
    }

    /// The intake a submission goes to: by its key, so that one key's
    /// messages keep their order.
    fn intake_index(&self, submission: &Submission) -> usize {
        let intakes = self.shared.intake_workers().len().max(1) as u64;
        (submission.key % intakes) as usize
    }

    /// Submits one message and waits for its reply (for simple use and
    /// tests; programs with many messages in flight use [`submit`](Self::submit)
    /// and a sink).
    pub fn call(&self, codec: Codec, body: Vec<u8>, peer: IpAddr) -> OwnedReply {
        let tag = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        self.calls.waiting.lock().insert(tag, tx);
        let _ = self.submit(Submission {
            sink: self.call_sink,
            tag,
            peer,
            key: tag,
            codec,
            body,
        });
        match rx.recv() {
            Ok(reply) => reply,
            // Cannot happen: every submission gets a reply, and the sender
            // is only dropped after sending.
            Err(_) => OwnedReply {
                outcome: Outcome::Error(Code::InternalError),
                correlation_id: None,
                codec,
                body: Vec::new(),
            },
        }
    }

    /// Sends `command` (a Command, sealed as its level needs) to the peer
    /// behind sink `sink` and `tag`, and returns what waits for its answer:
    /// the Response or Error from that same sink and tag that correlates
    /// with its id, or `timeout` after `timeout` (the engine's `timeout_ms`
    /// when `None`). The sink gets the encoded command as a [`Reply`](super::Reply) with
    /// outcome [`Outcome::Sent`].
    pub fn send_command(
        &self,
        sink: SinkId,
        tag: u64,
        codec: Codec,
        command: &Message,
        timeout: Option<Duration>,
    ) -> Result<PendingReply, Error> {
        let shared = &*self.shared;
        if command.kind != MessageType::Command {
            return Err(Error::new(
                Code::ValidationFailed,
                "only a Command can be sent",
            ));
        }
        if shared.phase() != Phase::Running {
            return Err(Error::new(Code::Unavailable, "the engine is not running"));
        }
        let timeout =
            timeout.unwrap_or_else(|| Duration::from_millis(shared.config.load().timeout_ms));
        let deadline = shared
            .clock
            .now()
            .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        let to = Destination { sink, tag, codec };
        let pending = shared.outbound.register(&command.id, to, deadline)?;
        with_writer(shared, |_, writer| {
            writer.send(&shared.sinks, to, command, None, Outcome::Sent);
        });
        Ok(pending)
    }

    /// Applies a new configuration: keys rotate, rules, limits and timeouts
    /// change for messages that start from now on (messages in flight finish
    /// under the config they started with). Refused with
    /// `configuration_error`, changing nothing, if a key does not load or
    /// if `[engine]` thread or queue settings differ (those need a restart).
    ///
    /// The audit log, when there is one, reopens its file (for logrotate)
    /// and records the reload: the keys in use after it, or why it was
    /// refused. (`[audit]` itself is read at start only.)
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let outcome = self.apply(config);
        if let Some(audit) = &self.shared.audit {
            audit.reopen();
            let keys = outcome
                .as_ref()
                .map(|()| keys_in_use(&self.shared.security));
            audit.record(reload_event(keys));
        }
        outcome
    }

    fn apply(&self, config: Config) -> Result<(), Error> {
        let current = self.shared.config.load();
        let (old, new) = (&current.engine, &config.engine);
        for (field, same) in [
            ("engine.workers", old.workers == new.workers),
            (
                "engine.queue_capacity",
                old.queue_capacity == new.queue_capacity,
            ),
            ("engine.topology", old.topology == new.topology),
            ("engine.max_deferred", old.max_deferred == new.max_deferred),
            ("engine.stack_kib", old.stack_kib == new.stack_kib),
            ("engine.pin_threads", old.pin_threads == new.pin_threads),
            ("engine.idle_spins", old.idle_spins == new.idle_spins),
            ("engine.idle_yields", old.idle_yields == new.idle_yields),
        ] {
            if !same {
                return Err(Error::new(
                    Code::ConfigurationError,
                    format!("`{field}` cannot change while the engine runs"),
                ));
            }
        }
        self.shared.security.reload(&config, unix_nanos_now())?;
        let config = Arc::new(config);
        self.shared.config.update(|_| Arc::clone(&config));
        Ok(())
    }

    /// What the audit log did, when there is one (`[audit]`).
    pub fn audit_stats(&self) -> Option<AuditStats> {
        self.shared.audit.as_ref().map(AuditLog::stats)
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.shared.config.load())
    }

    /// A reading of the metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        let depths = self
            .shared
            .workers_shared()
            .iter()
            .map(|m| m.jobs.len())
            .collect();
        self.shared.metrics.snapshot(depths)
    }

    /// The engine's state: status, the last message, pending commands,
    /// counts (`ProtocolState` of docs/seed-specification.md).
    pub fn state(&self) -> ProtocolState {
        let shared = &*self.shared;
        let status = match shared.phase() {
            Phase::Running => Status::Running,
            Phase::Draining | Phase::Abandoning => Status::Draining,
            Phase::Stopped => Status::Stopped,
        };
        let newest = shared
            .workers_shared()
            .iter()
            .filter_map(|m| m.recent.newest())
            .chain(shared.timer_recent.newest())
            .max_by_key(|m| m.at);
        ProtocolState {
            status,
            last_message_id: newest.as_ref().map(|m| m.id.clone()),
            pending_commands: shared
                .workers_shared()
                .iter()
                .map(|m| m.deferred.load(Ordering::Acquire))
                .sum::<usize>()
                + shared.outbound.len(),
            message_count: self.metrics().accepted,
            last_activity: newest.map_or(0, |m| m.at),
        }
    }

    /// The most recent messages (ids and outcomes, never payloads), newest
    /// first, up to `limit`; each worker keeps `engine.message_history`.
    pub fn recent_messages(&self, limit: usize) -> Vec<RecentMessage> {
        let shared = &*self.shared;
        let mut all: Vec<RecentMessage> = shared
            .workers_shared()
            .iter()
            .map(|m| &m.recent)
            .chain(std::iter::once(&shared.timer_recent))
            .flat_map(|recent| recent.recent(limit))
            .collect();
        all.sort_by_key(|m| std::cmp::Reverse(m.at));
        all.truncate(limit);
        all
    }

    /// The errors the engine sent, oldest first (the newest
    /// `engine.max_error_history`).
    pub fn recent_errors(&self) -> Vec<ErrorRecord> {
        self.shared.errors.recent()
    }

    /// Forgets the latencies recorded so far (counters keep counting): a
    /// benchmark calls it after its warm-up.
    pub fn reset_latencies(&self) {
        self.shared.metrics.reset_latencies();
    }

    /// The security state (keys, revocations), e.g. to revoke a token.
    pub fn security(&self) -> &Arc<SecurityState> {
        &self.shared.security
    }

    /// Stops taking messages, lets accepted ones finish for up to
    /// `engine.drain_ms`, answers what is left `unavailable`, and joins the
    /// threads. Calling it again does nothing.
    pub fn shutdown(&self) {
        let shared = &*self.shared;
        if shared.phase() >= Phase::Stopped {
            return;
        }
        shared.lifecycle.close_intake(shared.workers_shared());
        let drain = Duration::from_millis(shared.config.load().engine.drain_ms);
        let deadline = Instant::now() + drain;
        while !self.drained() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        shared.advance(Phase::Abandoning);
        for worker_shared in shared.workers_shared() {
            worker_shared.parker.wake();
        }
        // Workers now answer what is queued `unavailable`; the timer does
        // the same for deferred commands and stuck handlers.
        if let Some(timer) = &*self.timer.lock() {
            timer.thread().unpark();
        }
        let grace = Instant::now() + Duration::from_secs(5);
        while !self.drained() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(1));
        }
        shared.advance(Phase::Stopped);
        for worker_shared in shared.workers_shared() {
            worker_shared.parker.wake();
        }
        for handle in self.workers.lock().drain(..) {
            // A worker stuck in a handler is not waited for: the timer has
            // answered its message.
            if handle.is_finished() || self.wait_finished(&handle) {
                let _ = handle.join();
            }
        }
        if let Some(timer) = self.timer.lock().take() {
            timer.thread().unpark();
            let _ = timer.join();
        }
    }

    fn wait_finished(&self, handle: &JoinHandle<()>) -> bool {
        let until = Instant::now() + Duration::from_millis(500);
        while !handle.is_finished() {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Whether nothing accepted is still unanswered.
    fn drained(&self) -> bool {
        self.shared.drained()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
