//! The audit log's running half: engine threads hand events over a
//! bounded lock-free queue (a [`Ring`], the engine's own, which its loom
//! models check) and never wait; a writer thread of the log's own takes
//! them, collapses repeats ([`Collapser`]) and writes lines. The writer
//! looks at the queue every [`WRITER_PERIOD`] rather than being woken:
//! refusals need no wake-up on the message path, and a period's events fit
//! the queue unless a flood passes them, which is then dropped and
//! counted.

use std::thread::JoinHandle;
use std::time::Duration;

use super::concurrency::Ring;
use crate::audit::{AuditEvent, AuditKind, Collapser, Output, Taken};
use crate::config::{AuditConfig, AuditOutput};
use crate::security::SecurityState;
use std::net::IpAddr;

use crate::error::{Category, Code, Error};
use crate::message::MessageView;
use crate::message::unix_nanos_now;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};

/// How often the writer takes what is queued.
pub const WRITER_PERIOD: Duration = Duration::from_millis(20);

/// What the log did, counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditStats {
    /// Lines written.
    pub lines: u64,
    /// Events counted into a collapsed line instead of a line of their own.
    pub collapsed: u64,
    /// Events dropped: the queue was full, or too many distinct refusals
    /// in one interval.
    pub dropped: u64,
    /// Writes that failed (the lines are lost; the file is reopened at the
    /// next reload).
    pub write_errors: u64,
}

/// What engine threads and the writer share.
#[derive(Debug)]
struct AuditShared {
    queue: Ring<AuditEvent>,
    lines: AtomicU64,
    collapsed: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    reopen: AtomicBool,
    stop: AtomicBool,
}

/// The running audit log (`[audit]`); dropping it writes what is queued
/// and stops the writer.
#[derive(Debug)]
pub struct AuditLog {
    shared: Arc<AuditShared>,
    thread: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Opens the output and starts the writer thread.
    pub fn start(config: &AuditConfig) -> Result<AuditLog, Error> {
        let output = Output::open(&config.output)?;
        let shared = Arc::new(AuditShared {
            queue: Ring::new(usize::try_from(config.queue).unwrap_or(4096)),
            lines: AtomicU64::new(0),
            collapsed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let writer = Writer {
            output,
            target: config.output.clone(),
            collapser: Collapser::new(Duration::from_secs(config.collapse_secs)),
            shared: Arc::clone(&shared),
            lines: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("mcp-audit".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| {
                Error::new(
                    Code::InternalError,
                    format!("cannot start the audit writer: {e}"),
                )
            })?;
        Ok(AuditLog {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands `event` to the writer; never waits. Dropped (and counted)
    /// when the queue is full.
    pub fn record(&self, event: AuditEvent) {
        if self.shared.queue.push(event).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reopens the output at the writer's next turn (after logrotate moved
    /// the file).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
    }

    /// What the log did so far.
    pub fn stats(&self) -> AuditStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        AuditStats {
            lines: get(&self.shared.lines),
            collapsed: get(&self.shared.collapsed),
            dropped: get(&self.shared.dropped),
            write_errors: get(&self.shared.write_errors),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    output: Output,
    target: AuditOutput,
    collapser: Collapser,
    shared: Arc<AuditShared>,
    lines: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        loop {
            // Read before draining: an event queued before the stop was
            // asked for is written.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if self.shared.reopen.swap(false, Ordering::AcqRel) {
                match Output::open(&self.target) {
                    Ok(output) => self.output = output,
                    Err(e) => tracing::error!(error = %e, "audit log: reopen failed; writing on"),
                }
            }
            let mut written = 0;
            while let Some(event) = self.shared.queue.pop() {
                match self
                    .collapser
                    .take(event, unix_nanos_now(), &mut self.lines)
                {
                    Taken::Written => written += 1,
                    Taken::Collapsed => {
                        self.shared.collapsed.fetch_add(1, Ordering::Relaxed);
                    }
                    Taken::Dropped => {
                        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let now = unix_nanos_now();
            written += if stopping {
                self.collapser.flush(&mut self.lines)
            } else {
                self.collapser.tick(now, &mut self.lines)
            };
            self.write(written);
            if stopping {
                return;
            }
            std::thread::park_timeout(WRITER_PERIOD);
        }
    }

    /// Writes the `count` lines gathered.
    fn write(&mut self, count: u64) {
        if self.lines.is_empty() {
            return;
        }
        match self.output.write(&self.lines) {
            Ok(()) => {
                self.shared.lines.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "audit log: write failed; these lines are lost");
            }
        }
        self.lines.clear();
    }
}

/// Whether the audit log keeps a refusal of `error` at admission: the
/// security checks' codes, and `resource_exhausted` (a rate limit, a
/// principal's share of the replay memory).
pub(crate) fn audited(error: &Error) -> bool {
    error.code().category() == Category::Security || error.code() == Code::ResourceExhausted
}

/// A refused message as the audit log tells it: its code and the engine's
/// words, the principal if its token verified, the peer, its id and the
/// command (or event) its plain payload names.
pub(crate) fn refusal(
    error: &Error,
    message: &MessageView<'_>,
    principal: Option<&str>,
    peer: IpAddr,
    at: i128,
) -> AuditEvent {
    let payload = message.payload();
    let command = payload
        .get("command")
        .or_else(|| payload.get("event"))
        .and_then(|name| name.as_str());
    AuditEvent {
        principal: principal.map(Box::from),
        peer: Some(peer),
        message_id: Some(Box::from(message.id())),
        command: command.map(Box::from),
        ..AuditEvent::refused(at, error.code(), error.message())
    }
}

/// The keys `security` holds, by use and id with their state (never their
/// material): `jwt dev-jwt-1 active, signing sig-1 retired, ...`.
pub(crate) fn keys_in_use(security: &SecurityState) -> String {
    let keyring = security.keyring.load();
    let keys: Vec<String> = keyring
        .states()
        .map(|(key_use, id, state)| format!("{} {id} {state}", key_use.as_str()))
        .collect();
    format!("reloaded; keys: {}", keys.join(", "))
}

/// A reload as the audit log tells it: which keys are in use after it, by
/// use and id (never their material), or why it was refused.
pub(crate) fn reload_event(outcome: Result<String, &Error>) -> AuditEvent {
    match outcome {
        Ok(keys) => AuditEvent::note(unix_nanos_now(), AuditKind::Reload, &keys),
        Err(error) => {
            let mut event = AuditEvent::note(
                unix_nanos_now(),
                AuditKind::Reload,
                &format!("refused: {}", error.message()),
            );
            event.code = Some(error.code());
            event
        }
    }
}
