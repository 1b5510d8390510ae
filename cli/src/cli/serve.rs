//! `mcp-engine serve`: the engine behind its TLS server, its NATS ingress
//! (`[nats]`, feature `nats`), or both, with the demo handlers, until
//! SIGTERM or SIGINT; SIGHUP reloads config and keys (the `[nats]` section
//! takes effect at restart).

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use mcp_engine::admin::{AdminLimits, AdminServer, AdminSource};
use mcp_engine::config::{AdminConfig, DEFAULT_ADMIN_LISTEN};
use mcp_engine::dev_setup::{DEV_ADDR, DevSetup};
use mcp_engine::engine::EngineBuilder;
use mcp_engine::server::Server;
use mcp_engine::{Config, Error};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::admin_source::ServeAdmin;
use super::broker;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The config file. Without it: dev mode (a fresh dev setup in a
    /// temporary folder, TLS on 127.0.0.1:7450).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen here instead (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Dev mode: also write the credentials JSON to FILE (atomically, once
    /// listening).
    #[arg(long, value_name = "FILE")]
    dev_credentials: Option<PathBuf>,
}

/// A dev setup's folder, removed when serving ends.
struct DevFolder(PathBuf);

impl Drop for DevFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `serve`: exits 0 after a graceful shutdown, 2 if it cannot start.
pub(crate) fn run(args: &ServeArgs) -> ExitCode {
    init_logs();
    if args.config.is_some() && args.dev_credentials.is_some() {
        eprintln!("mcp-engine serve: --dev-credentials is for dev mode (no --config)");
        return ExitCode::from(2);
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-engine serve: {}", e.message());
            ExitCode::from(2)
        }
    }
}

fn init_logs() {
    // A handler panic is caught and answered `internal_error`; log it as
    // one line instead of the default hook's report.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(%info, "panic (answered internal_error if in a handler)");
    }));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries the credentials line.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn serve(args: &ServeArgs) -> Result<(), Error> {
    // Every connection is a descriptor: take what the hard limit allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let (config_path, dev) = match &args.config {
        Some(path) => (path.clone(), None),
        None => {
            let dir = dev_folder()?;
            let setup = DevSetup::write(&dir.0, args.listen.unwrap_or(DEV_ADDR))?;
            (setup.config_path.clone(), Some((dir, setup)))
        }
    };
    // Signals first: once the credentials are out, a SIGHUP or SIGTERM
    // must find its handler, not the default action (exit).
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT]).map_err(|e| {
        Error::new(
            mcp_engine::Code::InternalError,
            format!("cannot handle signals: {e}"),
        )
    })?;
    let config = load(&config_path, args.listen)?;
    let (builder, _notices) = mcp_engine::demo::register(EngineBuilder::new(config.clone()));
    let engine = Arc::new(builder.start()?);
    // The broker first: a config that names one it cannot reach stops here.
    let nats = broker::start(&engine, &config)?;
    let server = if config.server.enabled {
        Some(Arc::new(Server::start(Arc::clone(&engine), &config)?))
    } else {
        tracing::info!("`server.enabled = false`: no TCP listener");
        None
    };
    // The admin endpoint: as `[admin]` says; in dev mode on 127.0.0.1:7451,
    // or a free port when the listener's is.
    let admin_source = Arc::new(ServeAdmin::new(
        Arc::clone(&engine),
        server.clone(),
        broker::view(nats.as_ref()),
    ));
    let admin_config = match (&config.admin, &dev) {
        (Some(admin), _) => Some(admin.clone()),
        (None, Some(_)) => Some(AdminConfig::on(match args.listen {
            Some(listen) if listen.port() == 0 => SocketAddr::new(DEFAULT_ADMIN_LISTEN.ip(), 0),
            _ => DEFAULT_ADMIN_LISTEN,
        })),
        (None, None) => None,
    };
    let admin = match admin_config {
        Some(admin) => {
            let source = Arc::clone(&admin_source) as Arc<dyn AdminSource>;
            let started = AdminServer::start(admin.listen, AdminLimits::default(), source)?;
            tracing::info!(addr = %started.local_addr(), "admin endpoint");
            Some(started)
        }
        None => None,
    };
    if let Some((_, setup)) = &dev {
        let addr = server.as_deref().map(Server::local_addr).ok_or_else(|| {
            Error::new(
                mcp_engine::Code::ConfigurationError,
                "dev mode needs the TCP listener",
            )
        })?;
        let admin_addr = admin.as_ref().map(AdminServer::local_addr);
        let credentials = credentials_at(&setup.credentials, addr, admin_addr)?;
        write_atomically(&setup.credentials_path, &credentials)?;
        tracing::info!(
            credentials = %setup.credentials_path.display(),
            config = %setup.config_path.display(),
            "dev mode"
        );
        if let Some(path) = &args.dev_credentials {
            write_atomically(path, &credentials)?;
        }
        println!("{credentials}");
    }
    let reload = |config: &Config| match &server {
        Some(server) => server.reload(config),
        None => engine.reload(config.clone()),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let looker = server.as_ref().map(|server| {
            let stop = &stop;
            std::thread::Builder::new()
                .name("mcp-quiet-memory".to_owned())
                .spawn_scoped(scope, move || {
                    super::quiet_memory::return_while_quiet(server, stop)
                })
        });
        wait_for_signals(signals, reload, &config_path, args.listen);
        stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(Ok(looker)) = looker {
            looker.thread().unpark();
        }
    });
    // In order: not ready (a balancer stops sending first), stop taking
    // messages from the broker and publish the replies of those taken,
    // then close the listener, then the engine; the admin endpoint last.
    admin_source.drain();
    broker::stop(nats);
    match server {
        Some(server) => server.shutdown(),
        None => engine.shutdown(),
    }
    drop(admin);
    tracing::info!("stopped");
    drop(dev);
    Ok(())
}

fn load(path: &Path, listen: Option<SocketAddr>) -> Result<Config, Error> {
    let mut config = Config::load(path)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    Ok(config)
}

/// Blocks until SIGTERM or SIGINT, reloading on SIGHUP.
fn wait_for_signals(
    mut signals: Signals,
    reload: impl Fn(&Config) -> Result<(), Error>,
    config_path: &Path,
    listen: Option<SocketAddr>,
) {
    for signal in signals.forever() {
        if signal == SIGHUP {
            match load(config_path, listen).and_then(|config| reload(&config)) {
                Ok(()) => tracing::info!(config = %config_path.display(), "reloaded"),
                Err(e) => {
                    tracing::error!(error = %e.message(), "reload refused; the old config stays")
                }
            }
        } else {
            tracing::info!(signal, "shutting down");
            break;
        }
    }
}

fn dev_folder() -> Result<DevFolder, Error> {
    let key = mcp_engine::dev_setup::random_key()?;
    let suffix: String = key.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("mcp-engine-dev-{}-{suffix}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::new(
            mcp_engine::Code::ConfigurationError,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    Ok(DevFolder(dir))
}

/// The credentials line with the addresses the server and the admin
/// endpoint really listen on.
fn credentials_at(
    credentials: &str,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
) -> Result<String, Error> {
    let mut value: serde_json::Value = serde_json::from_str(credentials)
        .map_err(|e| Error::new(mcp_engine::Code::InternalError, format!("credentials: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "addr".to_owned(),
            serde_json::Value::String(addr.to_string()),
        );
        if let Some(admin) = admin {
            object.insert(
                "admin".to_owned(),
                serde_json::Value::String(format!("http://{admin}")),
            );
        }
    }
    Ok(value.to_string())
}

/// Writes `text` to `path` by a temporary file and a rename, so that a
/// reader sees the whole file or none.
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        Error::new(
            mcp_engine::Code::ConfigurationError,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    // Owner-only: the file holds keys.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}
