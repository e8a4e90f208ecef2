//! SVG charts of a suite run (plotters, SVG backend only; text is left to the SVG viewer's fonts,
//! so no font files or font crates are needed).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::suite::broker::Flavor;
use crate::suite::report::{metric, Status, SuiteReport};

const SQUALL: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const NSQD: RGBColor = RGBColor(0xd0, 0x7a, 0x2a);
const ROW_PX: u32 = 22;

struct Bar {
    label: String,
    value: f64,
    color: RGBColor,
}

/// A horizontal bar chart: one row per bar, labels on the left.
fn hbars(path: &Path, title: &str, x_desc: &str, bars: &[Bar], log: bool, mark: Option<f64>) -> Result<()> {
    if bars.is_empty() {
        return Ok(());
    }
    let height = 90 + ROW_PX * bars.len() as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let min = bars
        .iter()
        .map(|b| b.value)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(mark.unwrap_or(f64::INFINITY));
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let n = bars.len() as i32;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(330);
    let y = (0..n).into_segmented();
    let y_fmt = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let bar_rect = |i: usize, x0: f64, v: f64, color: RGBColor| {
        let mut r = Rectangle::new(
            [
                (x0, SegmentValue::Exact(i as i32)),
                (v.max(x0), SegmentValue::Exact(i as i32 + 1)),
            ],
            color.filled(),
        );
        r.set_margin(3, 3, 0, 0);
        r
    };
    if log {
        let lo = (min / 2.0).max(1e-3);
        let mut chart = builder
            .build_cartesian_2d((lo..max).log_scale(), y)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .y_labels(bars.len())
            .y_label_formatter(&y_fmt)
            .x_desc(x_desc)
            .disable_y_mesh()
            .draw()
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(
                bars.iter()
                    .enumerate()
                    .map(|(i, b)| bar_rect(i, lo, b.value, b.color)),
            )
            .map_err(|e| draw(&e))?;
        if let Some(m) = mark {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m, SegmentValue::Exact(0)), (m, SegmentValue::Exact(n))],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| draw(&e))?;
        }
    } else {
        let mut chart = builder.build_cartesian_2d(0.0..max, y).map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .y_labels(bars.len())
            .y_label_formatter(&y_fmt)
            .x_desc(x_desc)
            .x_label_formatter(&|v| crate::suite::report::fmt_value(*v))
            .disable_y_mesh()
            .draw()
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(
                bars.iter()
                    .enumerate()
                    .map(|(i, b)| bar_rect(i, 0.0, b.value, b.color)),
            )
            .map_err(|e| draw(&e))?;
    }
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

fn flavor_bars(r: &SuiteReport, keys: &[&str]) -> Vec<Bar> {
    let mut bars = Vec::new();
    for sr in &r.scenarios {
        for key in keys {
            for (f, color) in [(Flavor::Squall, SQUALL), (Flavor::Nsqd, NSQD)] {
                let Some(runs) = sr.runs(f) else { continue };
                if !matches!(runs.status, Status::Ok) {
                    continue;
                }
                if let Some(&v) = runs.median.get(*key) {
                    let what = metric(key).map_or(*key, |m| m.label);
                    bars.push(Bar {
                        label: format!("{} · {what} · {}", sr.scenario.name, f.label()),
                        value: v,
                        color,
                    });
                }
            }
        }
    }
    bars
}

/// Writes throughput.svg, latency.svg and ratios.svg into `dir`; returns the files written.
pub fn write_all(r: &SuiteReport, dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let tp = flavor_bars(r, &["pub_msgs_per_s", "sub_msgs_per_s", "deliveries_per_s"]);
    if !tp.is_empty() {
        hbars(
            &dir.join("throughput.svg"),
            "Throughput (median, msgs/s; Squall blue, nsqd orange)",
            "messages per second",
            &tp,
            false,
            None,
        )?;
        written.push("throughput.svg".into());
    }
    let lat = flavor_bars(r, &["p50_us", "p99_us", "p999_us", "max_us"]);
    if !lat.is_empty() {
        hbars(
            &dir.join("latency.svg"),
            "End-to-end latency at a fixed rate (median of runs, µs, log scale)",
            "microseconds",
            &lat,
            true,
            None,
        )?;
        written.push("latency.svg".into());
    }
    let mut ratios = Vec::new();
    for sr in &r.scenarios {
        for key in [
            "pub_msgs_per_s",
            "sub_msgs_per_s",
            "deliveries_per_s",
            "p99_us",
            "rss_per_conn_kib",
            "broker_cpu_us_per_msg",
        ] {
            if let (Some(&x), Some(m)) = (sr.ratios.get(key), metric(key)) {
                // Drawn as "times better" so every bar reads the same way: right of 1 = Squall wins.
                let better = if m.higher_is_better { x } else { 1.0 / x.max(1e-9) };
                ratios.push(Bar {
                    label: format!("{} · {}", sr.scenario.name, m.label),
                    value: better,
                    color: if better >= 1.0 { SQUALL } else { NSQD },
                });
            }
        }
    }
    if !ratios.is_empty() {
        hbars(
            &dir.join("ratios.svg"),
            "How many times better Squall is than nsqd (log scale; line at 1×)",
            "× better (throughput: Squall/nsqd; latency, CPU, RSS: nsqd/Squall)",
            &ratios,
            true,
            Some(1.0),
        )?;
        written.push("ratios.svg".into());
    }
    Ok(written)
}
