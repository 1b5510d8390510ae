//! [`EngineBuilder`]: a config, handlers and hooks in; a running
//! [`Engine`] out, its workers and timer spawned and supervised.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::config::Config;
use crate::error::{Code, Error};
use crate::message::unix_nanos_now;
use crate::security::SecurityState;
use crate::sync::{Arc, AtomicU64, Mutex};

use super::audit_log::AuditLog;
use super::call_sink::CallSink;
use super::clock::{Clock, ManualClock};
use super::concurrency::Seat;
use super::error_log::{ErrorHook, ErrorLog, ErrorRecord};
use super::handler::{CommandHandler, EventHandler};
use super::idle::IdleStrategy;
use super::registry::{CommandSpec, Registry};
use super::runtime::Engine;
use super::shared::Shared;
use super::sink::ReplySink;
use super::thread_plan::{Role, ThreadPlan};
use super::timer;
use super::worker::Worker;
use super::worker_shared::WorkerShared;

/// Starts an engine: a config, handlers, then [`EngineBuilder::start`].
pub struct EngineBuilder {
    config: Config,
    registry: Registry,
    /// Set by `idle_strategy`; otherwise the config's.
    idle: Option<IdleStrategy>,
    hooks: HashMap<Code, Vec<ErrorHook>>,
    error: Option<Error>,
    /// Set by `clock`; otherwise the system's monotonic clock.
    clock: Option<ManualClock>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// A builder for an engine running `config`.
    pub fn new(config: Config) -> EngineBuilder {
        EngineBuilder {
            config,
            registry: Registry::with_builtins(),
            idle: None,
            hooks: HashMap::new(),
            error: None,
            clock: None,
        }
    }

    /// Runs `hook` whenever the engine sends an Error with `code` (the
    /// recovery hooks of docs/seed-specification.md): on the engine thread that sent it, so it
    /// must be quick. A panic in it is caught.
    pub fn on_error(
        mut self,
        code: Code,
        hook: impl Fn(&ErrorRecord) + Send + Sync + 'static,
    ) -> EngineBuilder {
        self.hooks.entry(code).or_default().push(Arc::new(hook));
        self
    }

    /// Registers a command handler under `name`, declaring the default
    /// resource and action of the name (`a.b`: resource `a`, action `b`).
    pub fn command(self, name: &str, handler: impl CommandHandler) -> EngineBuilder {
        self.command_with(CommandSpec::new(name), handler)
    }

    /// Registers a command handler as `spec` declares it.
    pub fn command_with(
        mut self,
        spec: CommandSpec,
        handler: impl CommandHandler,
    ) -> EngineBuilder {
        if let Err(error) = self.registry.command(spec, Arc::new(handler)) {
            self.error.get_or_insert(error);
        }
        self
    }

    /// Subscribes `handler` to the event `name` (any number per event).
    pub fn subscribe(mut self, name: &str, handler: impl EventHandler) -> EngineBuilder {
        self.registry.subscribe(name, Arc::new(handler));
        self
    }

    /// How idle workers wait (spins, then yields, then park), instead of
    /// the config's `engine.idle_spins` and `engine.idle_yields`.
    pub fn idle_strategy(mut self, idle: IdleStrategy) -> EngineBuilder {
        self.idle = Some(idle);
        self
    }

    /// Counts the engine's time on `clock` instead of the system's
    /// monotonic clock (see [`ManualClock`]): for tests of deadlines,
    /// breakers and retries that move time by hand instead of sleeping.
    pub fn clock(mut self, clock: ManualClock) -> EngineBuilder {
        self.clock = Some(clock);
        self
    }

    /// Loads the keys, spawns the workers and the timer, and returns the
    /// running engine. A registration error (a name used twice) or a key
    /// that does not load is a `configuration_error`.
    pub fn start(self) -> Result<Engine, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let EngineBuilder {
            config,
            registry,
            idle,
            hooks,
            ..
        } = self;
        let idle = idle.unwrap_or(IdleStrategy {
            spins: config.engine.idle_spins,
            yields: config.engine.idle_yields,
        });
        let security = Arc::new(SecurityState::from_config(&config, unix_nanos_now())?);
        let plan = ThreadPlan::of(&config);
        let workers = plan.threads();
        let ThreadPlan {
            queue_capacity,
            max_deferred,
            history,
            stack_bytes: stack,
            pin,
            ..
        } = plan;
        let errors = ErrorLog::new(
            workers + 2,
            usize::try_from(config.engine.max_error_history).unwrap_or(1024),
            hooks,
        );
        let clock = match self.clock {
            Some(manual) => Clock::manual(manual),
            None => Clock::new(),
        };
        let audit = config.audit.as_ref().map(AuditLog::start).transpose()?;
        let mut shared = Shared::new(registry, config, security, &plan, errors, clock);
        shared.audit = audit;
        let shared = Arc::new(shared);

        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let pin_to = |index: usize| {
            // Pinning helps only with a core per worker.
            if pin && workers <= cores.len() {
                cores.get(index).copied()
            } else {
                None
            }
        };
        let mut threads = Vec::with_capacity(workers + 1);
        let mut workers_shared = Vec::with_capacity(workers);
        let mut seats = Vec::with_capacity(workers);
        for index in 0..workers {
            let (worker_shared_tx, worker_shared_rx) = mpsc::sync_channel(1);
            let shared_for_worker = Arc::clone(&shared);
            let core = pin_to(index);
            let role = plan.role(index);
            let handle = std::thread::Builder::new()
                .name(match role {
                    Role::Whole => format!("mcp-worker-{index}"),
                    Role::Front => format!("mcp-front-{index}"),
                    Role::Back => format!("mcp-back-{index}"),
                })
                .stack_size(stack)
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let worker_shared = Arc::new(WorkerShared::new(
                        queue_capacity,
                        max_deferred,
                        history,
                        crate::sync::thread::current(),
                    ));
                    let seat = Arc::new(Seat::new(Worker::new(
                        index,
                        role,
                        Arc::clone(&shared_for_worker),
                        Arc::clone(&worker_shared),
                    )));
                    let _ = worker_shared_tx.send((Arc::clone(&worker_shared), Arc::clone(&seat)));
                    supervise(role, &shared_for_worker, &seat, idle);
                })
                .map_err(|e| {
                    Error::new(
                        Code::ResourceExhausted,
                        format!("cannot start a worker: {e}"),
                    )
                })?;
            let (worker_shared, seat) = worker_shared_rx
                .recv()
                .map_err(|_| Error::new(Code::InternalError, "a worker failed to start"))?;
            workers_shared.push(worker_shared);
            // Submitters run messages only where a worker runs every stage.
            if role == Role::Whole {
                seats.push(seat);
            }
            threads.push(handle);
        }
        let _ = shared.workers_shared.set(workers_shared.into_boxed_slice());
        let shared_for_timer = Arc::clone(&shared);
        let timer = std::thread::Builder::new()
            .name("mcp-timer".to_owned())
            .stack_size(stack)
            .spawn(move || timer::run(&shared_for_timer))
            .map_err(|e| {
                Error::new(
                    Code::ResourceExhausted,
                    format!("cannot start the timer: {e}"),
                )
            })?;

        let calls = Arc::new(CallSink::default());
        let call_sink = shared
            .sinks
            .register(Arc::clone(&calls) as Arc<dyn ReplySink>);
        Ok(Engine {
            shared,
            workers: Mutex::new(threads),
            timer: Mutex::new(Some(timer)),
            seats: seats.into_boxed_slice(),
            calls,
            call_sink,
            next_call: AtomicU64::new(0),
        })
    }
}

/// A worker thread's life: run the loop; if a panic escapes it, answer the
/// message it held and run it again with fresh state.
fn supervise(role: Role, shared: &Shared, seat: &Seat<Worker>, idle: IdleStrategy) {
    loop {
        match catch_unwind(AssertUnwindSafe(|| Worker::run(seat, idle))) {
            Ok(()) => {
                if role == Role::Front {
                    shared.gate.front_exited(shared.back_workers());
                }
                return;
            }
            Err(_) => seat.take().renew_after_panic(),
        }
    }
}
