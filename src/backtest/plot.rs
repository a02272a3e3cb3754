//! `--plot FILE.png`: demand (in instances' worth of capacity) and each
//! policy's instances and ready instances over time, one panel per policy.
//! Labels need a TrueType font: the first of a few common system fonts found
//! is used; without one the chart is drawn without text.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{Run, SimSettings};

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system font once; false when none is there.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the program.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The time span worth drawing (seconds): from a little before the first
/// change of any policy's count to a little after the last, so a busy hour
/// is not squeezed into a sliver of a quiet day.
fn busy_span(runs: &[Run]) -> (f64, f64) {
    let all = || runs.iter().flat_map(|r| r.tally.points.iter());
    let start = all().next().map_or(0.0, |p| p.t);
    let end = all().map(|p| p.t).fold(start + 1.0, f64::max);
    let changes = runs.iter().flat_map(|r| {
        r.tally
            .points
            .windows(2)
            .filter(|w| w[0].instances != w[1].instances)
            .map(|w| w[1].t)
    });
    let (first, last) = changes.fold((f64::MAX, f64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    if first > last {
        return (start, end);
    }
    let pad = ((last - first) * 0.1).max(300.0);
    ((first - pad).max(start), (last + pad).min(end))
}

/// Draws `runs` (one app) to a PNG at `path`: per policy, the demand and the
/// instances it needs at the policy's target (`target_rps` per instance),
/// the instances asked for and ready, and a predictive policy's forecast.
pub fn draw(
    path: &Path,
    title: &str,
    runs: &[Run],
    sim: &SimSettings,
    target_rps: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = font_ready();
    let height = 220 * runs.len().max(1) as u32 + 60;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = if text {
        root.titled(title, ("sans-serif", 24))?
    } else {
        root
    };
    let panels = root.split_evenly((runs.len().max(1), 1));
    let (t_min, t_max) = busy_span(runs);
    let (unit, scale) = if t_max - t_min > 4.0 * 3600.0 {
        ("hours", 3600.0)
    } else {
        ("minutes", 60.0)
    };
    let y_max = runs
        .iter()
        .flat_map(|r| r.tally.points.iter())
        .filter(|p| p.t >= t_min && p.t <= t_max)
        .map(|p| {
            (p.demand_rps / target_rps.min(sim.capacity_rps).max(1e-9)).max(f64::from(p.instances))
        })
        .fold(1.0, f64::max)
        * 1.08;
    for (i, (run, area)) in runs.iter().zip(panels.iter()).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut chart = ChartBuilder::on(area);
        chart.margin(8);
        if text {
            chart
                .caption(
                    format!(
                        "{} ({}): {:.0} instance-s, {:.0} under-provisioned, {} actions",
                        run.contender,
                        run.algorithm,
                        run.tally.instance_seconds,
                        run.tally.under_provisioned_instance_seconds,
                        run.tally.scale_actions
                    ),
                    ("sans-serif", 16),
                )
                .x_label_area_size(28)
                .y_label_area_size(44);
        }
        let mut chart = chart.build_cartesian_2d(t_min / scale..t_max / scale, 0.0..y_max)?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(WHITE.mix(0.0));
        if text {
            mesh.x_desc(unit).y_desc("instances");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        let shown: Vec<_> = run
            .tally
            .points
            .iter()
            .filter(|p| p.t >= t_min && p.t <= t_max)
            .collect();
        let step = (shown.len() / 4000).max(1);
        let pts = || shown.iter().step_by(step);
        if target_rps > 0.0 {
            chart
                .draw_series(DashedLineSeries::new(
                    pts().map(|p| (p.t / scale, (p.demand_rps / target_rps).min(y_max))),
                    6,
                    4,
                    RGBColor(120, 120, 120).stroke_width(1),
                ))?
                .label("needed at the target")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(120, 120, 120)));
        }
        let forecast: Vec<(f64, f64)> = run
            .tally
            .forecasts
            .iter()
            .filter(|(t, _)| *t >= t_min && *t <= t_max)
            .map(|(t, rps)| (t / scale, (rps / target_rps.max(1e-9)).min(y_max)))
            .collect();
        if !forecast.is_empty() {
            let fstep = (forecast.len() / 4000).max(1);
            chart
                .draw_series(DashedLineSeries::new(
                    forecast.into_iter().step_by(fstep),
                    3,
                    3,
                    RGBColor(255, 127, 14).stroke_width(2),
                ))?
                .label("forecast at the lead time ÷ target")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(255, 127, 14)));
        }
        chart
            .draw_series(LineSeries::new(
                pts().map(|p| (p.t / scale, (p.demand_rps / sim.capacity_rps).min(y_max))),
                BLACK.stroke_width(1),
            ))?
            .label("demand ÷ capacity per instance")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        chart
            .draw_series(LineSeries::new(
                pts().map(|p| (p.t / scale, f64::from(p.instances).min(y_max))),
                color.mix(0.45).stroke_width(1),
            ))?
            .label("instances")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.mix(0.45)));
        chart
            .draw_series(LineSeries::new(
                pts().map(|p| (p.t / scale, f64::from(p.ready).min(y_max))),
                color.stroke_width(2),
            ))?
            .label("ready instances")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 13))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
