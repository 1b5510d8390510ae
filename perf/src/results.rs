//! `--readme FILE --label TEXT`: writes the run's figures as one row of
//! the results table in `perf/README.md` (between the markers below),
//! replacing the row with the same label, so the table is refreshed by
//! runs, never typed by hand.

use std::path::Path;

use crate::harness::Report;
use crate::harness::one_run;

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";
const HEADER: &str = "| run | msg/s | p50 us | p99 us | p99.9 us | CPU share | load CPU | peak RSS MiB | errors | baseline msg/s | ratio |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// A throughput cell: the figure, and with several runs their range.
fn throughput(figure: f64, runs: &[f64]) -> String {
    if one_run(runs) {
        return format!("{figure:.0}");
    }
    let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let high = runs.iter().copied().fold(0.0, f64::max);
    format!("{figure:.0} (median of {}: {low:.0}-{high:.0})", runs.len())
}

/// A share of the cores, in percent of one core.
fn share(cores: Option<f64>) -> String {
    cores.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

/// The row of `report` under `label`: the engine's CPU share, then the
/// load generator's, both in percent of one core.
fn row(label: &str, report: &Report) -> String {
    let f = &report.figures;
    let errors: u64 = f.errors.values().sum::<u64>() + f.unanswered;
    format!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} | {errors} | {} | {} |",
        throughput(f.throughput_msgs_per_s, &report.throughput_runs),
        f.latency_us.p50,
        f.latency_us.p99,
        f.latency_us.p999,
        share(f.cpu_share),
        share(f.sender_cpu_share),
        f.peak_rss_bytes as f64 / 1048576.0,
        report.baseline.as_ref().map_or("-".into(), |b| {
            throughput(b.throughput_msgs_per_s, &report.baseline_throughput_runs)
        }),
        report
            .throughput_ratio
            .map_or("-".into(), |r| format!("{r:.2}")),
    )
}

/// `text` with the row of `label` set to `report`'s figures.
pub fn update(text: &str, label: &str, report: &Report) -> String {
    let new_row = row(label, report);
    let prefix = format!("| {label} |");
    let (before, rest) = match text.split_once(BEGIN) {
        Some(split) => split,
        None => (text, ""),
    };
    let (table, after) = rest.split_once(END).unwrap_or(("", rest));
    let mut rows: Vec<String> = table
        .lines()
        .filter(|line| {
            line.starts_with("| ") && !line.starts_with("| run |") && !line.starts_with("| ---")
        })
        .map(str::to_owned)
        .collect();
    match rows.iter_mut().find(|line| line.starts_with(&prefix)) {
        Some(line) => *line = new_row,
        None => rows.push(new_row),
    }
    let mut out = before.trim_end().to_owned();
    out.push_str(&format!("\n\n{BEGIN}\n{HEADER}\n"));
    for line in rows {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(END);
    out.push_str(after);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Updates `path` in place.
pub fn update_file(path: &Path, label: &str, report: &Report) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, update(&text, label, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{Figures, Report};

    fn report(throughput: f64) -> Report {
        Report {
            mode: "inproc".into(),
            level: "Standard".into(),
            codec: "json".into(),
            pace: "closed".into(),
            rate: None,
            batch: Some(32),
            connections: None,
            duration_secs: 1.0,
            figures: Figures {
                throughput_msgs_per_s: throughput,
                ..Figures::default()
            },
            baseline: None,
            throughput_ratio: None,
            throughput_runs: Vec::new(),
            baseline_throughput_runs: Vec::new(),
        }
    }

    #[test]
    fn a_label_has_one_row_and_a_rerun_replaces_it() {
        let text = "# perf\n\nintro\n";
        let once = update(text, "inproc max", &report(1000.0));
        let other = update(&once, "tls 64", &report(5.0));
        let again = update(&other, "inproc max", &report(2000.0));
        assert!(again.starts_with("# perf\n\nintro\n\n<!-- results:begin -->"));
        assert_eq!(again.matches("| inproc max |").count(), 1);
        assert!(again.contains("| inproc max | 2000 |"));
        assert!(again.contains("| tls 64 | 5 |"));
        assert!(again.find("| inproc max |") < again.find("| tls 64 |"));
    }

    #[test]
    fn repeated_runs_show_their_median_and_range() {
        let mut repeated = report(900.0);
        repeated.throughput_runs = vec![1000.0, 900.0, 800.0];
        repeated.baseline = Some(Figures {
            throughput_msgs_per_s: 150.0,
            ..Figures::default()
        });
        repeated.baseline_throughput_runs = vec![150.0, 140.0, 160.0];
        repeated.throughput_ratio = Some(6.0);
        let out = update("", "inproc max", &repeated);
        assert!(
            out.contains("| inproc max | 900 (median of 3: 800-1000) |"),
            "{out}"
        );
        assert!(
            out.contains("| 150 (median of 3: 140-160) | 6.00 |"),
            "{out}"
        );
    }

    #[test]
    fn the_row_shows_the_engine_and_the_load_generator_cpu() {
        let mut run = report(1000.0);
        run.figures.cpu_share = Some(1.32);
        run.figures.sender_cpu_share = Some(0.526);
        let out = update("", "sustained", &run);
        assert!(out.contains("| CPU share | load CPU |"), "{out}");
        assert!(out.contains("| 132.0% | 52.6% | 0 |"), "{out}");
    }

    #[test]
    fn text_after_the_table_stays() {
        let text = format!("top\n\n{BEGIN}\n{HEADER}\n| a | 1 |\n{END}\n\nafter\n");
        let out = update(&text, "b", &report(7.0));
        assert!(out.ends_with(&format!("{END}\n\nafter\n")));
        assert!(out.contains("| a | 1 |\n| b | 7 |"));
    }
}
