//! `bench-table`: criterion's saved medians as a Markdown table.
//!
//! Reads `target/criterion/<group>/<bench>/new/estimates.json` (written by
//! `cargo bench`) and prints one row per benchmark: its median in
//! nanoseconds per iteration, with the confidence interval, so that tables
//! in the README come from a run, not from typing.
//!
//! Usage: `cargo run -p mcp-perf --bin bench-table [CRITERION_DIR]`
//! (default `target/criterion`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
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

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/criterion"), PathBuf::from);
    let mut found = Vec::new();
    find_estimates(&dir, "", &mut found);
    if found.is_empty() {
        eprintln!(
            "bench-table: no estimates under {} (run `cargo bench` first)",
            dir.display()
        );
        return ExitCode::from(1);
    }
    println!("| benchmark | median ns | 95% interval ns |");
    println!("| --- | ---: | ---: |");
    for (id, path) in found {
        let parsed = fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Estimates>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(e) => println!(
                "| {id} | {:.0} | {:.0} to {:.0} |",
                e.median.point_estimate,
                e.median.confidence_interval.lower_bound,
                e.median.confidence_interval.upper_bound
            ),
            Err(e) => {
                eprintln!("bench-table: {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
