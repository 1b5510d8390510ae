//! How late this machine lets a sending thread be, with no engine at all:
//! the floor under every open-loop latency `mcp-bench` reports.
//!
//! Usage: `cargo run --release -p mcp-perf --bin pacing-floor [SECONDS]
//! [RATE] [spin]` (defaults: 5 seconds, 10000 sends per second). It paces
//! as `mcp-bench` does (sleeps until 50 us before each due time, then
//! spins; with `spin`, spins throughout), sends nothing, and prints how
//! late it got to each due time.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mcp_perf::harness::{spin_until, wait_until};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let spin = args.next().as_deref() == Some("spin");
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let Ok(mut lags) = Histogram::<u64>::new(3) else {
        return;
    };
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let sends = seconds * rate;
    for n in 1..=sends {
        let due = interval * u32::try_from(n).unwrap_or(u32::MAX);
        if spin {
            spin_until(start, due);
        } else {
            wait_until(start, due);
        }
        let lag = start.elapsed().saturating_sub(due);
        let _ = lags.record(u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX).max(1));
    }
    let us = |q: f64| lags.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{sends} sends at {rate}/s, {}: late by p50 {:.1} us, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}",
        if spin {
            "spinning throughout"
        } else {
            "sleeping, then spinning the last 50 us"
        },
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        lags.max() as f64 / 1000.0
    );
}
