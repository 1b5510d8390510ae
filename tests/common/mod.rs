//! Shared by the engine's integration tests: a dev setup (keys, tokens,
//! config) in a temporary folder, and messages sealed as a client would.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "nats")]
pub mod nats;

use std::net::{IpAddr, Ipv4Addr};

use mcp_engine::codec::{self, Codec};
use mcp_engine::dev_setup::{DEV_ADDR, DevSetup};
use mcp_engine::engine::{Engine, SinkId, Submission};
use mcp_engine::message::{Timestamp, unix_nanos_now};
use mcp_engine::security::{Keyring, Sealer};
use mcp_engine::{Config, Message, MessageType, RawJson, SecurityLevel};

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub keyring: Keyring,
    pub admin: String,
    pub reader: String,
}

pub fn setup(edit: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevSetup::write(dir.path(), DEV_ADDR).unwrap();
    let mut config = Config::load(&dev.config_path).unwrap();
    edit(&mut config);
    let credentials: serde_json::Value = serde_json::from_str(&dev.credentials).unwrap();
    Setup {
        keyring: Keyring::load(&config.security).unwrap(),
        config,
        admin: credentials["tokens"]["admin"].as_str().unwrap().to_owned(),
        reader: credentials["tokens"]["reader"].as_str().unwrap().to_owned(),
        dir,
    }
}

impl Setup {
    /// A sealer speaking as `token`'s holder.
    pub fn sealer(&self, token: &str) -> Sealer {
        Sealer::new(
            self.keyring.clone(),
            Some(token.to_owned()),
            "dev-sign-1",
            "dev-enc-1",
        )
        .unwrap()
    }
}

/// A Standard Command for `name` (no arguments), sealed and encoded as JSON.
pub fn command(sealer: &mut Sealer, id: &str, name: &str) -> Vec<u8> {
    let payload = format!(r#"{{"command":"{name}"}}"#);
    let m = message(
        sealer,
        id,
        MessageType::Command,
        SecurityLevel::Standard,
        &payload,
    );
    encode(&m, Codec::Json)
}

/// A JSON submission of `body` to `sink`, tagged `tag`, on key 0 (so on one
/// worker, in order).
pub fn submission(sink: SinkId, tag: u64, body: Vec<u8>) -> Submission {
    Submission {
        sink,
        tag,
        peer: LOCAL,
        key: 0,
        codec: Codec::Json,
        body,
    }
}

/// Submits `count` Standard `sys.ping` commands to `sink` (ids `p-0`,
/// `p-1`, ..., tagged with their number) through [`submission`], so on
/// one worker, in order.
pub fn submit_pings(engine: &Engine, sealer: &mut Sealer, sink: SinkId, count: u64) {
    for n in 0..count {
        let body = command(sealer, &format!("p-{n}"), "sys.ping");
        engine.submit(submission(sink, n, body)).unwrap();
    }
}

/// Waits (up to 5 s, polling each millisecond) until `done` holds, and
/// returns whether it does: a wait for other threads' progress, never a
/// timing assertion.
pub fn eventually(done: impl Fn() -> bool) -> bool {
    for _ in 0..5000 {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    done()
}

/// A message of `kind` and `level` with `payload`, stamped now and sealed.
pub fn message(
    sealer: &mut Sealer,
    id: &str,
    kind: MessageType,
    level: SecurityLevel,
    payload: &str,
) -> Message {
    let mut message = Message::new(id, kind, level, RawJson::parse(payload).unwrap());
    let now = unix_nanos_now();
    message.timestamp = Timestamp::from_unix_nanos(now);
    sealer.seal(&mut message, now).unwrap();
    message
}

/// `message` encoded as a frame body.
pub fn encode(message: &Message, codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Json => {
            let mut body = Vec::new();
            codec::json::encode(message, &mut body);
            body
        }
        Codec::Binary => {
            let mut body = codec::AlignedBytes::new();
            codec::binary::encode(message, &mut body).unwrap();
            body.to_vec()
        }
    }
}

/// A reply body decoded back into a message.
pub fn decode_reply(codec: Codec, body: &[u8]) -> Message {
    let body = body.to_vec();
    let mut decoder = codec::Decoder::new(codec::Limits::default());
    decoder
        .decode(codec, &body, unix_nanos_now())
        .unwrap()
        .to_message()
}
