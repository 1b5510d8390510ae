//! `mcp-bench`: the load harness (docs/cli.md). With no arguments it runs the
//! peak of docs/seed-specification.md, 10,000 msg/s in-process for 10 s, and prints the table.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use mcp_engine::client::Credentials;
use mcp_engine::codec::Codec;
use mcp_engine::{Error, SecurityLevel};
use mcp_perf::baseline::run_baseline;
use mcp_perf::harness::{
    Budgets, Figures, Framing, Generated, Lanes, Messages, NetTarget, Pace, Plan, Report, Setup,
    Workload, run_inproc, run_net,
};

/// Order keys of an in-process run: the engine's messages spread over
/// this many keys (so over every worker), each key one replay stream.
const IN_PROCESS_LANES: usize = 16;

// The allocator `mcp-engine serve` runs with; the baseline gets it too.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The engine embedded in this process (`Engine::submit`).
    Inproc,
    /// Plain TCP to a server.
    Tcp,
    /// TLS 1.3 to a server.
    Tls,
    /// Through a NATS broker to --engines engines in a queue group (a
    /// build with `--features nats`).
    Nats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Level {
    Low,
    Standard,
    High,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CodecArg {
    Json,
    Binary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TopologyArg {
    Sharded,
    Staged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Compare {
    /// The straightforward tokio + serde_json pipeline in `perf/`.
    Baseline,
}

/// Load the engine and measure it: latency from each message's intended
/// send time, throughput, errors by code, and what the engine cost.
#[derive(Parser, Debug)]
#[command(name = "mcp-bench", version)]
struct Args {
    /// Where messages go: the embedding API, or a server over TCP or TLS
    /// (started in this process unless --addr is given).
    #[arg(long, value_enum, default_value = "inproc")]
    mode: Mode,
    /// Open loop: messages per second, whatever the replies do.
    #[arg(long, default_value_t = 10_000, conflicts_with = "max")]
    rate: u64,
    /// Closed loop: as fast as replies come back, with --window in flight.
    #[arg(long)]
    max: bool,
    /// Open loop: spin until each message is due instead of sleeping most
    /// of the wait. The sender then takes a core of its own, and the
    /// host's timer latency no longer adds to the latency measured.
    #[arg(long, conflicts_with = "max")]
    spin: bool,
    /// Messages in flight in a closed-loop run (default: 1024 in-process,
    /// 64 per connection over the network).
    #[arg(long)]
    window: Option<usize>,
    /// Messages a closed-loop run hands over at once (in process: one
    /// `Engine::submit_batch`, to one worker); 1 submits each alone.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    batch: u64,
    /// Messages a closed-loop run makes beforehand; the run ends early
    /// when they are used up (not with --sustained).
    #[arg(long, default_value_t = 3_000_000)]
    pool: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before the measured part, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connections (network modes).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The security level of every message.
    #[arg(long, value_enum, default_value = "standard")]
    level: Level,
    /// The codec of every message.
    #[arg(long, value_enum, default_value = "json")]
    codec: CodecArg,
    /// Bytes of each command's argument.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Percent of messages that are events (acknowledged, so timed).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    events: u8,
    /// The engine's topology.
    #[arg(long, value_enum, default_value = "sharded")]
    topology: TopologyArg,
    /// Engine worker threads (default: one per core).
    #[arg(long)]
    workers: Option<u64>,
    /// Every message through a worker's queue, never run on the sending
    /// thread while its worker is parked (`engine.run_on_submitter =
    /// false`).
    #[arg(long)]
    no_run_on_submitter: bool,
    /// NATS mode: engines started in this process, each behind its NATS
    /// ingress, in one queue group.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    engines: u64,
    /// NATS mode: a running broker (default: a `nats-server` this run
    /// starts on a free loopback port).
    #[arg(long, value_name = "URL")]
    nats_url: Option<String>,
    /// A running server to load (tcp or tls), reached with --credentials.
    #[arg(long, requires = "credentials")]
    addr: Option<SocketAddr>,
    /// The running server's credentials.json (`mcp-engine serve` prints
    /// it, `dev-config` writes it).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Also run the same load against a comparison pipeline, same process
    /// run, and print the ratios.
    #[arg(long, value_enum)]
    compare: Option<Compare>,
    /// Runs of the engine (each followed by one of the baseline, with
    /// --compare): the figures shown are the median run's, and every
    /// run's throughput is listed. This machine's speed drifts from one
    /// minute to the next, so one run says little.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// Write every figure as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency against percentile (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Check the performance requirements of docs/seed-specification.md; exit 1 naming each miss.
    #[arg(long)]
    seed_budgets: bool,
    /// Write the figures as the row --label of the results table in this
    /// markdown file (perf/README.md).
    #[arg(long, requires = "label")]
    readme: Option<PathBuf>,
    /// The row's name in --readme.
    #[arg(long)]
    label: Option<String>,
    /// Make the messages while the run goes, on threads of their own
    /// (fresh ids, stream numbers, timestamps, signatures, encryption), so
    /// that the run's length is bounded by time, not by a pool made
    /// beforehand; the report adds the load generator's share of the cores.
    #[arg(long)]
    sustained: bool,
    /// Send version 1.0 messages, checked by id, instead of putting each
    /// lane on a replay stream (docs/protocol.md section 7a): to see the
    /// id table's bound (`security.replay_capacity`).
    #[arg(long)]
    no_streams: bool,
    /// With --sustained: threads that make messages (default: 1 at Low and
    /// Standard, 2 at High and Critical).
    #[arg(long, requires = "sustained", value_parser = clap::value_parser!(u64).range(1..=16))]
    generators: Option<u64>,
    /// A setting of the engine's config, as engine.toml would have it:
    /// KEY=VALUE, e.g. `engine.queue_capacity=256`, `engine.overflow=block`,
    /// `security.token_cache_capacity=0`. Repeatable; applied last.
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[cfg(feature = "nats")]
fn run_nats_mode(
    args: &Args,
    config: mcp_engine::Config,
    credentials: &Credentials,
    messages: Messages,
    plan: &Plan,
) -> Result<Figures, Error> {
    use mcp_perf::harness::{NatsBroker, run_nats};
    let broker = match &args.nats_url {
        Some(url) => NatsBroker::Url(url.clone()),
        None => NatsBroker::Own,
    };
    let engines = usize::try_from(args.engines).unwrap_or(1);
    run_nats(
        &broker,
        config,
        credentials,
        messages,
        plan,
        args.connections,
        engines,
    )
}

#[cfg(not(feature = "nats"))]
fn run_nats_mode(
    _args: &Args,
    _config: mcp_engine::Config,
    _credentials: &Credentials,
    _messages: Messages,
    _plan: &Plan,
) -> Result<Figures, Error> {
    Err(Error::new(
        mcp_engine::Code::ConfigurationError,
        "this mcp-bench has no NATS mode: cargo run --release -p mcp-perf --features nats \
         --bin mcp-bench -- --mode nats",
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn level_of(level: Level) -> SecurityLevel {
    match level {
        Level::Low => SecurityLevel::Low,
        Level::Standard => SecurityLevel::Standard,
        Level::High => SecurityLevel::High,
        Level::Critical => SecurityLevel::Critical,
    }
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} {value} is not a number of seconds"))
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let e = |e: Error| e.to_string();
    let plan = Plan {
        pace: if args.max {
            Pace::Closed {
                window: args.window.unwrap_or(match args.mode {
                    Mode::Inproc => 1024,
                    Mode::Tcp | Mode::Tls | Mode::Nats => 64 * args.connections.max(1),
                }),
                batch: args.batch as usize,
            }
        } else {
            if args.rate == 0 {
                return Err("--rate must be above 0".into());
            }
            Pace::Open {
                rate: args.rate,
                spin: args.spin,
            }
        },
        duration: seconds(args.duration, "duration")?,
        warmup: seconds(args.warmup, "warmup")?,
    };
    if plan.duration.is_zero() {
        return Err("--duration must be above 0".into());
    }
    let codec = match args.codec {
        CodecArg::Json => Codec::Json,
        CodecArg::Binary => Codec::Binary,
    };
    if args.compare.is_some() && codec != Codec::Json {
        return Err("--compare baseline speaks JSON only".into());
    }
    if args.addr.is_some() && !matches!(args.mode, Mode::Tcp | Mode::Tls) {
        return Err("--addr needs --mode tcp or tls".into());
    }
    if (args.nats_url.is_some() || args.engines != 1) && args.mode != Mode::Nats {
        return Err("--nats-url and --engines need --mode nats".into());
    }
    let workload = Workload {
        level: level_of(args.level),
        codec,
        payload_bytes: args.payload,
        event_percent: args.events,
        streams: !args.no_streams,
    };
    let mut setup =
        Setup::new(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))).map_err(e)?;
    let credentials = match &args.credentials {
        Some(path) => Credentials::load(path).map_err(e)?,
        None => setup.credentials.clone(),
    };
    // The flags are settings of the engine's config; --set comes last.
    let mut settings = vec![format!(
        "engine.topology={}",
        match args.topology {
            TopologyArg::Sharded => "sharded",
            TopologyArg::Staged => "staged",
        }
    )];
    if let Some(workers) = args.workers {
        settings.push(format!("engine.workers={workers}"));
    }
    if args.no_run_on_submitter {
        settings.push("engine.run_on_submitter=false".to_owned());
    }
    // A closed loop keeps the queues full: the sender waits for room
    // rather than being refused.
    if args.max {
        settings.push("engine.overflow=block".to_owned());
    }
    settings.extend(args.set.iter().cloned());
    setup.set(&settings).map_err(e)?;
    let config = setup.config.clone();
    let count = plan.messages(args.pool);
    // A replay stream per lane (an order key in process, a connection over
    // the network), so that each stream's numbers arrive in order.
    let lanes = match args.mode {
        Mode::Inproc => Lanes {
            count: IN_PROCESS_LANES,
            run: plan.batch_size(),
        },
        Mode::Tcp | Mode::Tls | Mode::Nats => Lanes {
            count: args.connections.max(1),
            run: 1,
        },
    };
    let makers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let generators = args.generators.map_or(
        if workload.level >= SecurityLevel::High {
            2
        } else {
            1
        },
        |n| n as usize,
    );
    // The messages of one run (the engine's or the baseline's): made now,
    // or while the run goes.
    let messages = |framing: Framing| -> Result<Messages, String> {
        if args.sustained {
            let made = Generated::start(workload, &credentials, lanes, generators, framing);
            Ok(Messages::Made(made.map_err(e)?))
        } else {
            let pool = workload.make_parallel(&credentials, count, makers, lanes);
            Ok(Messages::Pool(pool.map_err(e)?))
        }
    };

    let engine_run = || -> Result<Figures, String> {
        let messages = messages(match args.mode {
            Mode::Inproc => Framing::Bare,
            Mode::Tcp | Mode::Tls => Framing::Frame,
            Mode::Nats => Framing::CodecByte,
        })?;
        let progress = Progress::start(&plan, "engine");
        let figures = match args.mode {
            Mode::Inproc => run_inproc(config.clone(), messages, &plan),
            Mode::Tcp | Mode::Tls => {
                let target = match args.addr {
                    Some(addr) => NetTarget::Addr { addr },
                    None => NetTarget::Own {
                        tls: args.mode == Mode::Tls,
                    },
                };
                run_net(
                    &target,
                    config.clone(),
                    &credentials,
                    messages,
                    &plan,
                    args.connections,
                )
            }
            Mode::Nats => run_nats_mode(args, config.clone(), &credentials, messages, &plan),
        };
        progress.finish();
        something_measured(figures.map_err(e)?, args)
    };
    let baseline_run = || -> Result<Figures, String> {
        let messages = messages(Framing::Bare)?;
        let progress = Progress::start(&plan, "baseline");
        let figures = run_baseline(&config, &credentials, messages, &plan);
        progress.finish();
        something_measured(figures.map_err(e)?, args)
    };
    // Engine and baseline take turns, so that a slow minute of the host
    // falls on both.
    let mut engine_runs = Vec::new();
    let mut baseline_runs = Vec::new();
    for _ in 0..args.repeat {
        engine_runs.push(engine_run()?);
        if args.compare == Some(Compare::Baseline) {
            baseline_runs.push(baseline_run()?);
        }
    }
    let (engine, throughput_runs) = median_run(engine_runs).ok_or("no run")?;
    let (baseline, baseline_throughput_runs) = match median_run(baseline_runs) {
        Some((figures, runs)) => (Some(figures), runs),
        None => (None, Vec::new()),
    };
    let (pace, rate) = Report::pace_of(plan.pace);
    let report = Report {
        mode: format!("{:?}", args.mode).to_lowercase(),
        level: format!("{:?}", workload.level),
        codec: format!("{:?}", args.codec).to_lowercase(),
        pace,
        rate,
        batch: Report::batch_of(plan.pace),
        connections: (args.mode != Mode::Inproc).then_some(args.connections),
        duration_secs: engine.measured_secs,
        throughput_ratio: baseline
            .as_ref()
            .filter(|b| b.throughput_msgs_per_s > 0.0)
            .map(|b| engine.throughput_msgs_per_s / b.throughput_msgs_per_s),
        figures: engine,
        baseline,
        throughput_runs,
        baseline_throughput_runs,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let mut runs: Vec<(&str, &Figures)> = vec![("engine", &report.figures)];
        if let Some(b) = &report.baseline {
            runs.push(("baseline (tokio)", b));
        }
        let title = format!("mcp-bench {} {} {}", report.mode, report.level, report.pace);
        mcp_perf::plot::plot(path, &title, &runs)?;
    }
    if let (Some(path), Some(label)) = (&args.readme, &args.label) {
        mcp_perf::results::update_file(path, label, &report)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.seed_budgets {
        let mut budgets = Budgets::default();
        if args.max {
            // The seed specification sets its CPU budget at 10k msg/s, not at peak.
            budgets.cpu_share = f64::INFINITY;
        }
        let misses = budgets.misses(&report.figures);
        if misses.is_empty() {
            println!("seed budgets: all met");
        } else {
            for miss in &misses {
                println!("seed budget missed: {miss}");
            }
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `figures`, unless the run measured nothing: a closed loop whose pool
/// ran out during the warm-up, or no answer at all.
fn something_measured(figures: Figures, args: &Args) -> Result<Figures, String> {
    if figures.answered > 0 && figures.measured_secs > 0.0 {
        return Ok(figures);
    }
    Err(if args.max {
        format!(
            "nothing was measured: the --pool of {} messages ran out during the {} s warm-up \
             (raise --pool or shorten --warmup)",
            args.pool, args.warmup
        )
    } else {
        "nothing was answered in the measured part of the run".into()
    })
}

/// The run of median throughput (the lower of the two middle ones for an
/// even count), and every run's throughput in the order they ran.
fn median_run(runs: Vec<Figures>) -> Option<(Figures, Vec<f64>)> {
    let throughputs: Vec<f64> = runs.iter().map(|f| f.throughput_msgs_per_s).collect();
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| throughputs[a].total_cmp(&throughputs[b]));
    let middle = *order.get(order.len().checked_sub(1)? / 2)?;
    let median = runs.into_iter().nth(middle)?;
    Some((median, throughputs))
}

/// The progress bar: elapsed against warm-up plus duration (hidden when
/// stderr is not a terminal).
struct Progress {
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(plan: &Plan, what: &str) -> Progress {
        let total = (plan.warmup + plan.duration).as_millis() as u64;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:40}] {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_owned());
        let warmup = plan.warmup;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bench-progress".into())
                .spawn(move || {
                    let started = std::time::Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        let elapsed = started.elapsed();
                        bar.set_position((elapsed.as_millis() as u64).min(total));
                        bar.set_message(if elapsed < warmup {
                            "warming up"
                        } else {
                            "measuring"
                        });
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    bar.finish_and_clear();
                })
                .ok()
        };
        Progress { stop, ticker }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(throughput: f64, threads: u64) -> Figures {
        Figures {
            throughput_msgs_per_s: throughput,
            threads,
            ..Figures::default()
        }
    }

    #[test]
    fn the_median_run_is_reported_whole_with_every_throughput_in_order() {
        let (median, all) = median_run(vec![run(3.0, 1), run(1.0, 2), run(2.0, 3)]).unwrap();
        assert_eq!((median.throughput_msgs_per_s, median.threads), (2.0, 3));
        assert_eq!(all, [3.0, 1.0, 2.0]);
        // Even: the lower middle one.
        let (median, _) =
            median_run(vec![run(4.0, 1), run(1.0, 2), run(2.0, 3), run(3.0, 4)]).unwrap();
        assert_eq!(median.threads, 3);
        let (median, all) = median_run(vec![run(5.0, 9)]).unwrap();
        assert_eq!((median.threads, all), (9, vec![5.0]));
        assert!(median_run(Vec::new()).is_none());
    }
}
