//! Calling the engine with values: a [`Message`] in, or a command built
//! by name with [`CommandCall`]; the reply out as the command's result
//! (checked and decrypted where its level needs it) or as the [`Error`] it
//! carried. Beside the byte-level [`Engine::submit`] and [`Engine::call`],
//! for programs that want neither envelopes nor sinks.

use std::net::{IpAddr, Ipv4Addr};

use crate::codec::{Codec, Decoder, Limits, json};
use crate::error::{Code, Error};
use crate::json::{JsonRef, MAX_VALUE_DEPTH, Parser, RawJson};
use crate::message::{
    Field, Message, MessageType, MessageView, SecurityLevel, named_payload, unix_nanos_now,
};
use crate::security::cipher::CipherScratch;
use crate::security::signature::SignatureScratch;
use crate::security::{Sealer, open_reply, requirements};
use crate::sync::Ordering;

use super::runtime::Engine;
use super::sink::Outcome;

impl Engine {
    /// Submits `message` as if from `peer`, waits for its reply, and reads
    /// it as a value: a Command's `result`; an Event's `{"delivered": n}`
    /// (whether or not it asked for an acknowledgement); `null` for a
    /// Response or Error, which the engine takes without answering. An
    /// Error reply is the `Err`, with its code and message. A reply that
    /// the level says is signed is checked, and one that is encrypted is
    /// decrypted, with the engine's keys.
    ///
    /// `message` must be sealed as its level requires (a [`Sealer`] does
    /// it); at `Low` it needs nothing. Its id must be fresh: the engine
    /// refuses a replay.
    pub fn call_message(&self, message: &Message, peer: IpAddr) -> Result<RawJson, Error> {
        let mut body = Vec::new();
        json::encode(message, &mut body);
        let reply = self.call(Codec::Json, body, peer);
        self.reply_value(reply.outcome, reply.codec, &reply.body)
    }

    /// A reply that came to a sink, read as [`call_message`] reads it: the
    /// `outcome`, `codec` and `body` of a [`Reply`](super::Reply) or an
    /// [`OwnedReply`](super::OwnedReply). For programs that [`submit`]
    /// many messages and want each reply as a value.
    ///
    /// [`call_message`]: Self::call_message
    /// [`submit`]: Self::submit
    pub fn reply_value(
        &self,
        outcome: Outcome,
        codec: Codec,
        body: &[u8],
    ) -> Result<RawJson, Error> {
        match outcome {
            Outcome::Response => self.read_reply(codec, body),
            Outcome::Delivered(_) if !body.is_empty() => self.read_reply(codec, body),
            Outcome::Delivered(count) => RawJson::parse(&format!("{{\"delivered\":{count}}}")),
            Outcome::Absorbed => Ok(RawJson::null()),
            Outcome::Error(code) => Err(read_error(code, codec, body)),
            Outcome::Sent => Err(Error::new(
                Code::InternalError,
                "a command the engine sent is not a reply",
            )),
        }
    }

    /// A Command named `name`, to build and [`call`](CommandCall::call):
    /// at `Low`, from the loopback address, with no arguments unless given.
    ///
    /// ```
    /// use mcp_engine::engine::{Answer, EngineBuilder, Request};
    /// use mcp_engine::{Code, Config, RawJson};
    ///
    /// let mut config = Config::default();
    /// config.allow_anonymous(["math:*"]);
    /// let engine = EngineBuilder::new(config)
    ///     .command("math.double", |request: &Request<'_>| {
    ///         let n = request.args().and_then(|a| a.get("n")).and_then(|n| n.as_i64());
    ///         Answer::value(&n.map(|n| n * 2))
    ///     })
    ///     .start()?;
    ///
    /// let doubled = engine.command("math.double").args(&serde_json::json!({"n": 21}))?.call()?;
    /// assert_eq!(doubled, RawJson::parse("42")?);
    /// let refused = engine.command("math.square").call().unwrap_err();
    /// assert_eq!(refused.code(), Code::HandlerNotFound);
    /// engine.shutdown();
    /// # Ok::<(), mcp_engine::Error>(())
    /// ```
    pub fn command<'a>(&'a self, name: &str) -> CommandCall<'a> {
        CommandCall {
            engine: self,
            name: name.to_owned(),
            args: None,
            level: SecurityLevel::Low,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sealer: None,
        }
    }

    /// The result a Response body carries, its signature checked and its
    /// payload decrypted as its level requires.
    fn read_reply(&self, codec: Codec, body: &[u8]) -> Result<RawJson, Error> {
        let now = unix_nanos_now();
        let mut decoder = Decoder::new(reply_limits());
        let view = decoder.decode(codec, body, now)?;
        let needs = requirements(view.security().security_level);
        if needs.signature && !matches!(view.security().signature, Field::Present(_)) {
            return Err(Error::new(
                Code::SignatureInvalid,
                "the reply is not signed",
            ));
        }
        let keyring = self.shared.security.keyring.load();
        let mut cipher = CipherScratch::default();
        let opened = open_reply(
            &view,
            &keyring,
            now,
            &mut SignatureScratch::default(),
            &mut cipher,
        )?;
        result_of(&view, opened, needs.encryption)
    }
}

/// A reply's decoder: as large as a reply may be, with the engine's
/// timestamp window.
fn reply_limits() -> Limits {
    Limits {
        max_message_size: u32::MAX as usize - 1,
        ..Limits::default()
    }
}

/// `payload.result` of a Response, from its `plaintext` if it was
/// encrypted (and refused if `encrypted` says it must be and was not).
fn result_of(
    view: &MessageView<'_>,
    plaintext: Option<&mut [u8]>,
    encrypted: bool,
) -> Result<RawJson, Error> {
    let result = |payload: JsonRef<'_>| {
        payload
            .get("result")
            .map(RawJson::from_json)
            .ok_or_else(|| Error::new(Code::ValidationFailed, "the reply has no result"))
    };
    let Some(plaintext) = plaintext else {
        if encrypted {
            return Err(Error::new(
                Code::EncryptionFailed,
                "the reply is not encrypted",
            ));
        }
        return result(view.payload());
    };
    let text = std::str::from_utf8(plaintext)
        .map_err(|_| Error::new(Code::EncryptionFailed, "the plaintext is not UTF-8"))?;
    let mut text = text.as_bytes().to_vec();
    let mut tape = simd_json::Tape::null().reset();
    Parser::new(MAX_VALUE_DEPTH)
        .parse(&mut text, &mut tape)
        .map_err(|_| Error::new(Code::EncryptionFailed, "the plaintext is not JSON"))?;
    result(JsonRef::from_nodes(&tape.0).unwrap_or(JsonRef::NULL))
}

/// The Error an Error reply carries: `code` (the sink's outcome, read
/// before the body) with the reply's message when it can be read.
fn read_error(code: Code, codec: Codec, body: &[u8]) -> Error {
    let mut decoder = Decoder::new(reply_limits());
    let message = decoder
        .decode(codec, body, unix_nanos_now())
        .ok()
        .filter(|view| view.kind() == MessageType::Error)
        .and_then(|view| {
            view.payload()
                .get("message")
                .and_then(|message| message.as_str())
                .map(str::to_owned)
        });
    match message {
        Some(message) => Error::new(code, message),
        None => Error::new(code, code.summary()),
    }
}

/// A Command to call by name (see [`Engine::command`]).
#[derive(Debug)]
#[must_use = "a command call does nothing until `call`"]
pub struct CommandCall<'a> {
    engine: &'a Engine,
    name: String,
    args: Option<RawJson>,
    level: SecurityLevel,
    peer: IpAddr,
    sealer: Option<&'a mut Sealer>,
}

impl<'a> CommandCall<'a> {
    /// The command's `args`: any `Serialize` value (see
    /// [`RawJson::from_serialize`]); a [`RawJson`] is taken as it is.
    pub fn args<T: serde::Serialize + ?Sized>(mut self, args: &T) -> Result<Self, Error> {
        self.args = Some(RawJson::from_serialize(args)?);
        Ok(self)
    }

    /// Sends it at `level`, sealed by `sealer` (its token, signature,
    /// encryption and replay stream, as the level requires).
    pub fn sealed(mut self, level: SecurityLevel, sealer: &'a mut Sealer) -> Self {
        self.level = level;
        self.sealer = Some(sealer);
        self
    }

    /// Sends it as if from `peer` (the loopback address unless set): the
    /// address the engine's IP rules see.
    pub fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = peer;
        self
    }

    /// Builds the Command, seals it, submits it and waits for its result
    /// (see [`Engine::call_message`]).
    pub fn call(self) -> Result<RawJson, Error> {
        let payload = named_payload("command", &self.name, "args", self.args.as_ref())?;
        let n = self.engine.next_call.fetch_add(1, Ordering::Relaxed);
        let id = format!("call-{:08x}-{n}", self.engine.shared.boot);
        let mut message = Message::new(id, MessageType::Command, self.level, payload);
        if let Some(sealer) = self.sealer {
            let stamped = message.timestamp.unix_nanos();
            sealer.seal(&mut message, stamped)?;
        }
        self.engine.call_message(&message, self.peer)
    }
}
