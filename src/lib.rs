//! # mcp-engine
//!
//! An engine for the Machine Context Protocol (MCP): peers exchange
//! commands, responses and events as signed, optionally encrypted JSON (or
//! binary) envelopes over length-prefixed frames. The wire contract is
//! `docs/protocol.md`.
//!
//! The core is sans-I/O: bytes in, validated messages out, and back. The
//! layers, in the order a message crosses them:
//!
//! - [`frame`]: length-prefixed frames from a byte stream, in any chunking;
//! - [`codec`]: a frame body (JSON, read directly when plain and on
//!   simd-json otherwise, or binary on rkyv) to a
//!   [`MessageView`] that borrows the buffer, after every envelope rule; and
//!   the canonical form (RFC 8785) that signatures cover;
//! - [`message`]: the envelope as types, owned ([`Message`]) or borrowed
//!   ([`MessageView`]);
//! - [`error`]: the protocol's 18 error codes as one [`Error`] type;
//! - [`security`]: keys and their rotation, tokens, signatures, payload
//!   encryption, replay protection, levels and authorization;
//! - [`engine`]: workers on bounded lock-free queues that run every check
//!   and the handlers, and give each message exactly one reply;
//! - [`config`]: settings, defaults, and TOML loading;
//! - `nats` (cargo feature `nats`): the NATS ingress, engines sharing one
//!   subject's load in a queue group (`docs/scaling.md`).
//!
//! ## Example
//!
//! Build a command, send it through a frame, decode it on the other side,
//! and answer a refusal with the protocol's Error envelope:
//!
//! ```
//! use mcp_engine::codec::{self, Codec, Decoder, Limits};
//! use mcp_engine::frame::{FrameDecoder, write_frame};
//! use mcp_engine::{Message, MessageType, RawJson, SecurityLevel, Timestamp};
//!
//! // The sender builds and frames a message.
//! let payload = RawJson::parse(r#"{"command": "demo.echo", "args": {"text": "hi"}}"#)?;
//! let message = Message::new("c-0001", MessageType::Command, SecurityLevel::Low, payload);
//! let mut body = Vec::new();
//! codec::json::encode(&message, &mut body);
//! let mut wire = Vec::new();
//! write_frame(&mut wire, Codec::Json, &body)?;
//!
//! // The receiver reads frames from the stream and decodes each body.
//! let limits = Limits::default();
//! let mut frames = FrameDecoder::new(limits.max_message_size);
//! let mut decoder = Decoder::new(limits);
//! frames.push(&wire);
//! let frame = frames.next_frame().expect("a whole frame")?;
//! let now = Timestamp::now().unix_nanos();
//! let view = decoder.decode(frame.codec, frame.body, now)?;
//! assert_eq!(view.id(), "c-0001");
//! assert_eq!(view.security().security_level, SecurityLevel::Low);
//! let args = view.payload().get("args").expect("args");
//! assert_eq!(args.get("text").and_then(|t| t.as_str()), Some("hi"));
//! assert_eq!(view.to_message(), message);
//! drop(view);
//!
//! // A broken body is refused with the protocol's code.
//! let mut broken = br#"{"id": "c-0002", "type": "Command"}"#.to_vec();
//! let refusal = decoder.decode_json(&mut broken, now).unwrap_err();
//! assert_eq!(refusal.code().as_str(), "validation_failed");
//! let mut payload = Vec::new();
//! refusal.write_payload(&mut payload);
//! assert!(payload.starts_with(br#"{"category":"protocol","code":"validation_failed""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Embedding the engine
//!
//! Handlers registered by name, a sink that receives every reply, and
//! messages submitted without waiting. A handler may answer later from
//! another thread through its [`Responder`](engine::Responder). (For one
//! call at a time with values in and out, see
//! [`Engine::command`](engine::Engine::command).)
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::mpsc;
//! use mcp_engine::codec::{self, Codec};
//! use mcp_engine::engine::{Answer, EngineBuilder, Outcome, OwnedReply, Reply, Request, Submission};
//! use mcp_engine::{Config, Message, MessageType, RawJson, SecurityLevel};
//!
//! let mut config = Config::default();
//! config.allow_anonymous(["demo:*"]); // no keys in this example
//!
//! let engine = EngineBuilder::new(config)
//!     // Answers at once.
//!     .command("demo.echo", |request: &Request<'_>| {
//!         Ok(Answer::Result(request.args().map_or_else(RawJson::null, RawJson::from_json)))
//!     })
//!     // Answers later, from another thread.
//!     .command("demo.later", |request: &Request<'_>| {
//!         request.answer_later(|responder| {
//!             std::thread::spawn(move || responder.complete(Ok(RawJson::parse("42").unwrap())));
//!         })
//!     })
//!     .start()?;
//!
//! // Every reply goes to a sink: here, a channel.
//! let (tx, rx) = mpsc::channel();
//! let tx = std::sync::Mutex::new(tx);
//! let sink = engine.register_sink(move |reply: Reply<'_>| {
//!     let _ = tx.lock().unwrap().send((reply.tag, OwnedReply::from_reply(&reply)));
//! });
//!
//! for (tag, command) in [(1, "demo.echo"), (2, "demo.later"), (3, "no.such")] {
//!     let payload = RawJson::parse(&format!(r#"{{"command":"{command}"}}"#))?;
//!     let message = Message::new(format!("m-{tag}"), MessageType::Command, SecurityLevel::Low, payload);
//!     let mut body = Vec::new();
//!     codec::json::encode(&message, &mut body);
//!     let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
//!     // `key`: messages with one key (a connection) stay in order on one
//!     // worker. A refusal (a full queue) is answered through the sink too.
//!     let accepted = engine.submit(Submission { sink, tag, peer, key: 7, codec: Codec::Json, body });
//!     assert!(accepted.is_ok());
//! }
//! let mut outcomes: Vec<(u64, Outcome)> = (0..3).map(|_| {
//!     let (tag, reply) = rx.recv().unwrap();
//!     (tag, reply.outcome)
//! }).collect();
//! outcomes.sort_by_key(|(tag, _)| *tag);
//! assert_eq!(outcomes, [
//!     (1, Outcome::Response),
//!     (2, Outcome::Response),
//!     (3, Outcome::Error(mcp_engine::Code::HandlerNotFound)),
//! ]);
//! engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![doc(test(attr(deny(warnings))))]

pub mod admin;
pub mod audit;
pub mod client;
pub mod codec;
pub mod config;
pub mod demo;
pub mod dev_setup;
pub mod engine;
pub mod error;
pub mod frame;
pub mod framed_connection;
pub mod json;
pub mod message;
#[cfg(feature = "nats")]
pub mod nats;
mod prefetch;
pub mod security;
pub mod server;
mod sync;
pub mod tls;
mod transport_error;

#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod fuzzing;

pub use codec::{Codec, Decoder, Limits};
pub use config::Config;
pub use error::{Category, Code, Error};
pub use json::{JsonRef, RawJson};
pub use message::{
    EncryptionInfo, Field, Message, MessageType, MessageView, ReplayMark, SecurityLevel,
    SecurityMetadata, Timestamp, TypeKey,
};

/// The README's code, compiled and run as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The implementation guide's code, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/embedding.md")]
struct EmbeddingGuideDoctests;

/// The tuning guide's code, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/tuning.md")]
struct TuningGuideDoctests;
