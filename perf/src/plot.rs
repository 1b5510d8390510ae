//! `--plot FILE.svg`: latency against percentile, the engine and (with
//! `--compare`) the baseline, on log axes so that the tail is visible.

use std::path::Path;

use plotters::prelude::*;

use crate::harness::Figures;

/// The x coordinate of a percentile: `1 / (1 - p)`, so that 90, 99, 99.9
/// are evenly spaced.
fn spread(percentile: f64) -> f64 {
    1.0 / (1.0 - (percentile / 100.0).min(0.999_999)).max(1e-6)
}

/// Draws the curves of `runs` (`(name, figures)`) into `path`.
pub fn plot(path: &Path, title: &str, runs: &[(&str, &Figures)]) -> Result<(), String> {
    let points: Vec<(&str, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(name, figures)| {
            let curve = figures
                .curve
                .iter()
                .map(|&(p, us)| (spread(p), us.max(0.1)))
                .collect();
            (*name, curve)
        })
        .collect();
    let x_max = points
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(10.0_f64, f64::max)
        .min(1e6);
    let y_max = points
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max);
    let y_min = points
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.1, y_max);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let error = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (1.0..x_max * 1.2).log_scale(),
            (y_min * 0.8..y_max * 1.25).log_scale(),
        )
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            if p < 99.0 {
                format!("{p:.0}")
            } else {
                format!("{p:.3}").trim_end_matches('0').to_owned()
            }
        })
        .draw()
        .map_err(|e| error(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, curve)) in points.into_iter().enumerate() {
        let color = colors.get(i % colors.len()).copied().unwrap_or(BLACK);
        chart
            .draw_series(LineSeries::new(curve, color.stroke_width(2)))
            .map_err(|e| error(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))
}
