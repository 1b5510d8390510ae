//! Handlers by name: commands (one handler each, with the resource and
//! action it declares) and events (any number of subscribers).

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::error::{Code, Error};
use crate::security::Target;

use super::handler::{CommandHandler, EventHandler};
use super::recovery::{Breaker, BreakerPolicy, RetryPolicy};

/// How a command is registered: its name, the target authorization checks,
/// and its own deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    name: String,
    resource: String,
    action: String,
    timeout_ms: Option<u64>,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
}

impl CommandSpec {
    /// A command named `name`, declaring the default target of the name
    /// (`a.b`: resource `a`, action `b`) and the engine's `timeout_ms`.
    pub fn new(name: impl Into<String>) -> CommandSpec {
        let name = name.into();
        let Target { resource, action } = Target::of_name(&name);
        let (resource, action) = (resource.to_owned(), action.to_owned());
        CommandSpec {
            name,
            resource,
            action,
            timeout_ms: None,
            retry: RetryPolicy::NONE,
            breaker: BreakerPolicy::default(),
        }
    }

    /// Declares the resource authorization checks (instances named by a
    /// command's `resource` field must lie under it).
    pub fn resource(mut self, resource: impl Into<String>) -> CommandSpec {
        self.resource = resource.into();
        self
    }

    /// Declares the action authorization checks.
    pub fn action(mut self, action: impl Into<String>) -> CommandSpec {
        self.action = action.into();
        self
    }

    /// This command's deadline, overriding the engine's `timeout_ms`.
    pub fn timeout_ms(mut self, timeout_ms: u64) -> CommandSpec {
        self.timeout_ms = Some(timeout_ms.max(1));
        self
    }

    /// Retries failures that say they may pass (`resource_exhausted`,
    /// `timeout`, `unavailable`, `network_error`) as `retry` says, within
    /// the command's deadline. The waits happen on the worker: keep them
    /// short. Default: no retries.
    pub fn retry(mut self, retry: RetryPolicy) -> CommandSpec {
        self.retry = retry;
        self
    }

    /// The handler's circuit breaker (default: open after 20 consecutive
    /// failures, for 1 s).
    pub fn breaker(mut self, breaker: BreakerPolicy) -> CommandSpec {
        self.breaker = breaker;
        self
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub(crate) fn breaker_policy(&self) -> &BreakerPolicy {
        &self.breaker
    }

    /// The command name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command's own deadline, if it has one.
    pub fn timeout(&self) -> Option<u64> {
        self.timeout_ms
    }
}

/// A built-in command (docs/protocol.md section 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Ping,
    Renew,
    Metrics,
}

pub(crate) enum Action {
    Builtin(Builtin),
    Handler(Arc<dyn CommandHandler>),
}

pub(crate) struct CommandEntry {
    pub(crate) spec: CommandSpec,
    pub(crate) action: Action,
    pub(crate) breaker: Breaker,
}

impl CommandEntry {
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            resource: &self.spec.resource,
            action: &self.spec.action,
        }
    }
}

/// Every handler the engine runs. Fixed when the engine starts.
#[derive(Default)]
pub(crate) struct Registry {
    commands: Vec<CommandEntry>,
    by_name: HashMap<Box<str>, usize, RandomState>,
    events: HashMap<Box<str>, Vec<Arc<dyn EventHandler>>, RandomState>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("commands", &self.by_name.keys().collect::<Vec<_>>())
            .field("events", &self.events.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry holding the built-in commands.
    pub(crate) fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        for (name, builtin) in [
            ("sys.ping", Builtin::Ping),
            ("auth.renew", Builtin::Renew),
            ("sys.metrics", Builtin::Metrics),
        ] {
            registry.insert(CommandSpec::new(name), Action::Builtin(builtin));
        }
        registry
    }

    fn insert(&mut self, spec: CommandSpec, action: Action) {
        let index = self.commands.len();
        self.by_name
            .insert(spec.name.clone().into_boxed_str(), index);
        self.commands.push(CommandEntry {
            spec,
            action,
            breaker: Breaker::default(),
        });
    }

    /// Registers a command; a name taken already (built-ins included) is a
    /// configuration error.
    pub(crate) fn command(
        &mut self,
        spec: CommandSpec,
        handler: Arc<dyn CommandHandler>,
    ) -> Result<(), Error> {
        if spec.name.is_empty() {
            return Err(Error::new(
                Code::ConfigurationError,
                "a command needs a name",
            ));
        }
        if self.by_name.contains_key(spec.name.as_str()) {
            return Err(Error::new(
                Code::ConfigurationError,
                format!("command {:?} is registered twice", spec.name),
            ));
        }
        self.insert(spec, Action::Handler(handler));
        Ok(())
    }

    /// Subscribes `handler` to event `name`.
    pub(crate) fn subscribe(&mut self, name: &str, handler: Arc<dyn EventHandler>) {
        self.events
            .entry(Box::from(name))
            .or_default()
            .push(handler);
    }

    /// The command named `name`, and its index.
    pub(crate) fn command_named(&self, name: &str) -> Result<(usize, &CommandEntry), Error> {
        self.by_name
            .get(name)
            .and_then(|&index| Some((index, self.commands.get(index)?)))
            .ok_or_else(|| Error::new(Code::HandlerNotFound, "no handler for this command"))
    }

    /// Command `index`'s entry.
    pub(crate) fn command_at(&self, index: usize) -> Option<&CommandEntry> {
        self.commands.get(index)
    }

    /// The subscribers of event `name` (none: an empty slice).
    pub(crate) fn subscribers(&self, name: &str) -> &[Arc<dyn EventHandler>] {
        self.events.get(name).map_or(&[], Vec::as_slice)
    }
}
