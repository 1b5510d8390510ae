//! `bench-table`: criterion's saved medians as a Markdown table.
//!
//! Reads `target/criterion/<group>/<bench>/new/estimates.json` and
//! `benchmark.json` (written by `cargo bench`) and prints one row per
//! benchmark: its median in nanoseconds per element (per message, per frame:
//! an iteration divided by the throughput it declares), with the confidence
//! interval, so that tables in the README come from a run, not from typing.
//!
//! Usage: `cargo run -p mcp-perf --bin bench-table [CRITERION_DIR]`
//! (default: where criterion writes, `$CRITERION_HOME`, else
//! `$CARGO_TARGET_DIR/criterion`, else `target/criterion`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Benchmark {
    full_id: String,
    throughput: Option<Throughput>,
}

#[derive(Deserialize)]
enum Throughput {
    Elements(u64),
    Bytes(IgnoredAny),
    BytesDecimal(IgnoredAny),
    ElementsAndBytes { elements: u64 },
}

impl Throughput {
    /// Elements per iteration (1 when the throughput is in bytes).
    fn elements(&self) -> f64 {
        match self {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (*n).max(1) as f64
            }
            Throughput::Bytes(_) | Throughput::BytesDecimal(_) => 1.0,
        }
    }
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

/// Every `new/estimates.json` below `dir`, as (benchmark id, path).
fn find_estimates(dir: &Path, id: &str, found: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name == "report" || name == "base" || name == "change" {
            continue;
        }
        if name == "new" {
            let estimates = path.join("estimates.json");
            if estimates.is_file() {
                found.push((id.to_owned(), estimates));
            }
        } else if path.is_dir() {
            let child = if id.is_empty() {
                name.to_owned()
            } else {
                format!("{id}/{name}")
            };
            find_estimates(&path, &child, found);
        }
    }
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Whole nanoseconds, or one decimal below 100.
fn figure(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

/// Where criterion writes its results, as criterion itself decides.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(criterion_home, PathBuf::from);
    let mut found = Vec::new();
    find_estimates(&dir, "", &mut found);
    if found.is_empty() {
        eprintln!(
            "bench-table: no estimates under {} (run `cargo bench` first)",
            dir.display()
        );
        return ExitCode::from(1);
    }
    println!("| benchmark | median ns per element | 95% interval |");
    println!("| --- | ---: | ---: |");
    for (id, path) in found {
        let parsed = read::<Estimates>(&path).and_then(|e| {
            let meta = read::<Benchmark>(&path.with_file_name("benchmark.json"))?;
            Ok((e, meta))
        });
        match parsed {
            Ok((e, meta)) => {
                let per = meta.throughput.as_ref().map_or(1.0, Throughput::elements);
                let id = if meta.full_id.is_empty() {
                    id
                } else {
                    meta.full_id
                };
                println!(
                    "| {id} | {} | {} to {} |",
                    figure(e.median.point_estimate / per),
                    figure(e.median.confidence_interval.lower_bound / per),
                    figure(e.median.confidence_interval.upper_bound / per)
                );
            }
            Err(e) => {
                eprintln!("bench-table: {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
