//! [`Setup`] (a dev setup in a temporary folder: keys, config, credentials)
//! and [`Workload`]: the messages of a run, all made before it starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use mcp_engine::client::{Credentials, Envelopes, Outgoing};
use mcp_engine::codec::Codec;
use mcp_engine::dev_setup::DevSetup;
use mcp_engine::{Code, Config, Error, RawJson, SecurityLevel};

/// A development setup for a run, removed when dropped.
#[derive(Debug)]
pub struct Setup {
    /// The engine's config (dev keys and rules, `Low` allowed for role
    /// `anonymous` on `demo.*`).
    pub config: Config,
    /// What a client needs.
    pub credentials: Credentials,
    dir: PathBuf,
}

impl Setup {
    /// A fresh setup for a server at `addr`.
    pub fn new(addr: SocketAddr) -> Result<Setup, Error> {
        let key = mcp_engine::dev_setup::random_key()?;
        let suffix: String = key.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("mcp-bench-{}-{suffix}", std::process::id()));
        let dev = DevSetup::write(&dir, addr)?;
        let mut config = Config::load(&dev.config_path)?;
        open_to_anonymous(&mut config);
        let credentials = Credentials::parse(&dev.credentials)?;
        Ok(Setup {
            config,
            credentials,
            dir,
        })
    }

    /// Changes settings of the config as `engine.toml` would: each of
    /// `settings` is `KEY=VALUE`, KEY a dotted path (`engine.queue_capacity`,
    /// `security.replay_capacity`), VALUE a TOML value (a bare word is a
    /// string: `engine.overflow=block`). The result is checked as a config
    /// file is.
    pub fn set(&mut self, settings: &[String]) -> Result<(), Error> {
        if settings.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("engine.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::new(Code::ConfigurationError, format!("{}: {e}", path.display()))
        })?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| Error::new(Code::ConfigurationError, format!("engine.toml: {e}")))?;
        for setting in settings {
            set_one(&mut table, setting)?;
        }
        let mut config =
            Config::from_toml_in(&table.to_string(), "engine.toml with --set", &self.dir)?;
        open_to_anonymous(&mut config);
        self.config = config;
        Ok(())
    }
}

/// `Low` messages from anyone may call `demo.*`, so that a run measures
/// the engine rather than the rules.
fn open_to_anonymous(config: &mut Config) {
    config.allow_anonymous(["demo:*"]);
}

/// Applies one `KEY=VALUE` of [`Setup::set`] to `table`.
fn set_one(table: &mut toml::Table, setting: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::new(
            Code::ConfigurationError,
            format!(
                "--set {setting:?}: {why} (expected KEY=VALUE, e.g. engine.queue_capacity=256)"
            ),
        )
    };
    let (key, value) = setting.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let value: toml::Value = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut parsed| parsed.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let mut path: Vec<&str> = key.trim().split('.').collect();
    let last = path
        .pop()
        .filter(|last| !last.is_empty())
        .ok_or_else(|| bad("no key"))?;
    let mut section = table;
    for name in path {
        section = section
            .entry(name.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| bad("not a section"))?;
    }
    section.insert(last.to_owned(), value);
    Ok(())
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kind of messages a run sends.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Their security level.
    pub level: SecurityLevel,
    /// Their codec.
    pub codec: Codec,
    /// Bytes of the `demo.echo` argument (a string).
    pub payload_bytes: usize,
    /// Percent of messages that are `demo.notice` events (with `ack`, so
    /// that they are answered and timed).
    pub event_percent: u8,
    /// Each lane's messages on a replay stream of its own (version 1.1,
    /// docs/protocol.md section 7a); without, version 1.0 messages that
    /// the engine checks by id.
    pub streams: bool,
}

/// One message of a run.
#[derive(Debug)]
pub struct Prepared {
    /// Its id (replies correlate by it).
    pub id: String,
    /// Its codec.
    pub codec: Codec,
    /// The envelope.
    pub body: Vec<u8>,
    /// Its lane (see [`Lanes`]): the order key, connection or client it
    /// goes by, so that its replay stream's messages arrive in order.
    pub lane: usize,
}

/// How a run's messages are spread over the engine's order keys (in
/// process) or over connections: each lane has a replay stream of its own
/// (docs/protocol.md section 7a) and goes by one key or connection, so its
/// numbers reach the engine in the order they were made. Lanes take runs
/// of `run` messages in turn (a closed loop's batches in process; single
/// messages over connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lanes {
    /// How many.
    pub count: usize,
    /// Consecutive messages per turn.
    pub run: usize,
}

impl Lanes {
    /// One lane: everything in order (tests).
    pub const ONE: Lanes = Lanes { count: 1, run: 1 };

    /// The lane of message `index`.
    pub fn of(&self, index: usize) -> usize {
        (index / self.run.max(1)) % self.count.max(1)
    }
}

impl Workload {
    /// `count` unique messages (fresh ids, nonces and signatures) as the
    /// admin of `credentials`, on one lane and one replay stream.
    pub fn make(&self, credentials: &Credentials, count: usize) -> Result<Vec<Prepared>, Error> {
        self.make_parallel(credentials, count, 1, Lanes::ONE)
    }

    /// `count` unique messages on `lanes`, each lane with its own replay
    /// stream, made on `threads` threads (a thread makes whole lanes, in
    /// order, so each stream's numbers increase with the index).
    pub fn make_parallel(
        &self,
        credentials: &Credentials,
        count: usize,
        threads: usize,
        lanes: Lanes,
    ) -> Result<Vec<Prepared>, Error> {
        let threads = threads.clamp(1, 16).min(lanes.count.max(1));
        let parts: Vec<Result<Vec<(usize, Prepared)>, Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        self.make_lanes(credentials, count, lanes, |lane| lane % threads == t)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::new(
                            mcp_engine::Code::InternalError,
                            "workload thread panicked",
                        ))
                    })
                })
                .collect()
        });
        let mut slots: Vec<Option<Prepared>> = Vec::with_capacity(count);
        slots.resize_with(count, || None);
        for part in parts {
            for (index, message) in part? {
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(message);
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// The messages of the lanes `mine` picks, with their indexes.
    fn make_lanes(
        &self,
        credentials: &Credentials,
        count: usize,
        lanes: Lanes,
        mine: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, Prepared)>, Error> {
        let mut streams: std::collections::HashMap<usize, Envelopes> = Default::default();
        let args = RawJson::string(&"x".repeat(self.payload_bytes));
        let mut out = Vec::new();
        for index in 0..count {
            let lane = lanes.of(index);
            if !mine(lane) {
                continue;
            }
            let envelopes = match streams.entry(lane) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let mut envelopes = Envelopes::from_credentials(credentials, "admin")?;
                    if !self.streams {
                        envelopes.set_stream(None);
                    }
                    entry.insert(envelopes)
                }
            };
            let event = (index % 100) < usize::from(self.event_percent);
            let Outgoing { id, codec, body } = if event {
                envelopes.event(self.codec, self.level, "demo.notice", Some(&args), true)?
            } else {
                envelopes.command(self.codec, self.level, "demo.echo", Some(&args))?
            };
            out.push((
                index,
                Prepared {
                    id,
                    codec,
                    body,
                    lane,
                },
            ));
        }
        Ok(out)
    }
}

/// A run's messages: made before the clock starts (a pool, whose size
/// bounds the run), or while it goes (`--sustained`).
#[derive(Debug)]
pub enum Messages {
    /// Made beforehand, in send order.
    Pool(Vec<Prepared>),
    /// Made while the run goes.
    Made(super::Generated),
}

impl From<Vec<Prepared>> for Messages {
    fn from(pool: Vec<Prepared>) -> Messages {
        Messages::Pool(pool)
    }
}

/// Slots of a sustained run's recorder: messages in flight, and answers
/// that come late, fit many times over.
const RING: usize = 1 << 18;

impl Messages {
    /// The recorder of a run of these messages per `plan`, its clock
    /// starting now.
    pub fn recorder(&self, plan: &super::Plan) -> super::Recorder {
        let start = std::time::Instant::now();
        match self {
            Messages::Pool(pool) => super::Recorder::new(pool.len(), start),
            Messages::Made(_) => {
                let from = plan.warmup.as_nanos() as u64;
                let to = (plan.warmup + plan.duration).as_nanos() as u64;
                super::Recorder::ring(RING, start, from, to)
            }
        }
    }
}

impl Messages {
    /// The messages in send order, taken as they are sent. Those made
    /// while the run goes keep being made until `self` is dropped: after
    /// the run's last CPU reading, which counts their threads.
    pub fn take(&mut self) -> Box<dyn Iterator<Item = Prepared> + '_> {
        match self {
            Messages::Pool(pool) => Box::new(pool.drain(..)),
            Messages::Made(made) => Box::new(made),
        }
    }
}
