//! What handlers are and what they see.
//!
//! A command handler gets a [`Request`] (principal, roles, peer, the
//! decrypted arguments borrowed from the engine's buffers) and either
//! answers at once with a result, or takes a [`Responder`] and answers later
//! from any thread. An event handler gets an [`Event`] and answers nothing.

use std::net::IpAddr;

use crate::error::Error;
use crate::json::{JsonRef, RawJson};
use crate::message::SecurityLevel;
use crate::security::VerifiedToken;

use super::pending::{Deferral, Responder};

/// A handler's answer to a command.
#[derive(Debug)]
#[must_use = "the handler must return its answer"]
pub enum Answer {
    /// The command's result (the Response's `payload.result`).
    Result(RawJson),
    /// The handler handed the request's [`Responder`] on, and the answer
    /// comes through it. Only [`Request::answer_later`] makes one.
    Deferred(Deferred),
}

/// Proof that a request's [`Responder`] was handed on: what
/// [`Answer::Deferred`] carries, made only by [`Request::answer_later`], so
/// that a handler cannot defer without giving the responder away, nor
/// give it away and answer too.
#[derive(Debug)]
pub struct Deferred(());

impl Answer {
    /// The result `value` (a number, a string, a map, a struct: anything
    /// `Serialize`), written as JSON without a text to parse in between
    /// (see [`RawJson::from_serialize`]). A value JSON cannot hold is the
    /// handler's fault: `internal_error`.
    ///
    /// ```
    /// use mcp_engine::engine::{Answer, EngineBuilder, Request};
    /// use mcp_engine::{Config, Error};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Sum { total: u64, terms: usize }
    ///
    /// let builder = EngineBuilder::new(Config::default()).command(
    ///     "math.sum",
    ///     |request: &Request<'_>| -> Result<Answer, Error> {
    ///         let terms: Vec<u64> = request
    ///             .args()
    ///             .and_then(|args| args.get("terms"))
    ///             .map(|terms| terms.elements().filter_map(|term| term.as_u64()).collect())
    ///             .unwrap_or_default();
    ///         Answer::value(&Sum { total: terms.iter().sum(), terms: terms.len() })
    ///     },
    /// );
    /// # drop(builder);
    /// ```
    pub fn value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Answer, Error> {
        RawJson::from_serialize(value)
            .map(Answer::Result)
            .map_err(|refused| {
                Error::new(
                    crate::error::Code::InternalError,
                    format!("the handler's result: {}", refused.message()),
                )
            })
    }
}

impl From<RawJson> for Answer {
    fn from(result: RawJson) -> Answer {
        Answer::Result(result)
    }
}

/// Handles one command.
///
/// Runs on an engine worker: it should not block. Work that waits belongs
/// behind a [`Responder`] (see [`Request::answer_later`]). A panic is caught and
/// answered `internal_error`; the worker lives on.
pub trait CommandHandler: Send + Sync + 'static {
    /// Answers `request`.
    fn handle(&self, request: &Request<'_>) -> Result<Answer, Error>;
}

impl<F> CommandHandler for F
where
    F: Fn(&Request<'_>) -> Result<Answer, Error> + Send + Sync + 'static,
{
    fn handle(&self, request: &Request<'_>) -> Result<Answer, Error> {
        self(request)
    }
}

/// Handles one event (many handlers may subscribe to one event name).
pub trait EventHandler: Send + Sync + 'static {
    /// Takes `event`. An error counts the delivery as failed.
    fn handle(&self, event: &Event<'_>) -> Result<(), Error>;
}

impl<F> EventHandler for F
where
    F: Fn(&Event<'_>) -> Result<(), Error> + Send + Sync + 'static,
{
    fn handle(&self, event: &Event<'_>) -> Result<(), Error> {
        self(event)
    }
}

/// Who sent a message, as the engine verified it.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The verified token, if the message carried one.
    pub token: Option<&'a VerifiedToken>,
    /// The client's address.
    pub peer: IpAddr,
    /// The level the message met.
    pub level: SecurityLevel,
}

impl<'a> Caller<'a> {
    /// The principal (`sub`), or `None` for an unauthenticated message.
    pub fn principal(&self) -> Option<&'a str> {
        self.token.map(|token| &*token.subject)
    }

    /// The roles the token grants (empty without a token).
    pub fn roles(&self) -> &'a [Box<str>] {
        self.token.map_or(&[], |token| &token.roles)
    }
}

/// A command as its handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    pub(crate) id: &'a str,
    pub(crate) command: &'a str,
    pub(crate) args: Option<JsonRef<'a>>,
    pub(crate) resource: Option<&'a str>,
    pub(crate) caller: Caller<'a>,
    pub(crate) deferral: Option<&'a Deferral<'a>>,
}

impl<'a> Request<'a> {
    /// The command's message id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The command name.
    pub fn command(&self) -> &'a str {
        self.command
    }

    /// `args`, borrowed from the engine's (decrypted) buffer; `None` when
    /// absent.
    pub fn args(&self) -> Option<JsonRef<'a>> {
        self.args
    }

    /// The resource instance the command named, if any.
    pub fn resource(&self) -> Option<&'a str> {
        self.resource
    }

    /// Who sent it.
    pub fn caller(&self) -> &Caller<'a> {
        &self.caller
    }

    /// The principal (`sub`), or `None` for an unauthenticated message.
    pub fn principal(&self) -> Option<&'a str> {
        self.caller.principal()
    }

    /// The roles the caller's token grants.
    pub fn roles(&self) -> &'a [Box<str>] {
        self.caller.roles()
    }

    /// The client's address.
    pub fn peer(&self) -> IpAddr {
        self.caller.peer
    }

    /// Takes this request's responder. Refused with `resource_exhausted`
    /// when the worker already holds its maximum of deferred commands, and
    /// with `state_error` if taken twice.
    fn defer(&self) -> Result<Responder, Error> {
        match self.deferral {
            Some(deferral) => deferral.take(),
            None => Err(Error::new(
                crate::error::Code::StateError,
                "this request cannot be deferred",
            )),
        }
    }

    /// Answers later, from any thread: hands this request's [`Responder`]
    /// to `start` (which may move it to another thread, a queue, a
    /// callback) and returns the [`Answer::Deferred`] the handler gives,
    /// the only way to make one. The engine still answers `timeout` at the
    /// command's deadline if the responder has not answered by then, and
    /// `internal_error` if it is dropped without answering. Refused with
    /// `resource_exhausted` when the worker already holds its maximum of
    /// deferred commands (`start` is not called then), and with
    /// `state_error` if called twice.
    ///
    /// ```
    /// use mcp_engine::engine::{Answer, EngineBuilder, Request};
    /// use mcp_engine::{Config, Error, RawJson};
    ///
    /// let builder = EngineBuilder::new(Config::default()).command(
    ///     "jobs.run",
    ///     |request: &Request<'_>| -> Result<Answer, Error> {
    ///         request.answer_later(|responder| {
    ///             std::thread::spawn(move || responder.complete(Ok(RawJson::null())));
    ///         })
    ///     },
    /// );
    /// # drop(builder);
    /// ```
    pub fn answer_later(&self, start: impl FnOnce(Responder)) -> Result<Answer, Error> {
        start(self.defer()?);
        Ok(Answer::Deferred(Deferred(())))
    }
}

/// An event as a subscriber sees it.
#[derive(Debug)]
pub struct Event<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) data: Option<JsonRef<'a>>,
    pub(crate) caller: Caller<'a>,
}

impl<'a> Event<'a> {
    /// The event's message id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The event name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// `data`, borrowed; `None` when absent.
    pub fn data(&self) -> Option<JsonRef<'a>> {
        self.data
    }

    /// Who sent it.
    pub fn caller(&self) -> &Caller<'a> {
        &self.caller
    }
}
