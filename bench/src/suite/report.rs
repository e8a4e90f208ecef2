//! Aggregation (medians, Squall/nsqd ratios) and the JSON and Markdown outputs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::suite::broker::Flavor;
use crate::suite::scenario::{Sample, Scenario};

/// A metric the suite reports: key, label, unit, and whether more is better.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub higher_is_better: bool,
}

/// Every metric, in table order.
pub const METRICS: &[Metric] = &[
    Metric {
        key: "pub_msgs_per_s",
        label: "publish msgs/s",
        higher_is_better: true,
    },
    Metric {
        key: "sub_msgs_per_s",
        label: "consume msgs/s",
        higher_is_better: true,
    },
    Metric {
        key: "deliveries_per_s",
        label: "deliveries/s",
        higher_is_better: true,
    },
    Metric {
        key: "p50_us",
        label: "latency p50 µs",
        higher_is_better: false,
    },
    Metric {
        key: "p90_us",
        label: "latency p90 µs",
        higher_is_better: false,
    },
    Metric {
        key: "p99_us",
        label: "latency p99 µs",
        higher_is_better: false,
    },
    Metric {
        key: "p999_us",
        label: "latency p99.9 µs",
        higher_is_better: false,
    },
    Metric {
        key: "max_us",
        label: "latency max µs",
        higher_is_better: false,
    },
    Metric {
        key: "rss_per_conn_kib",
        label: "broker RSS per connection KiB",
        higher_is_better: false,
    },
    Metric {
        key: "broker_cpu_us_per_msg",
        label: "broker CPU µs/msg",
        higher_is_better: false,
    },
    Metric {
        key: "broker_cpu_s",
        label: "broker CPU s",
        higher_is_better: false,
    },
    Metric {
        key: "broker_peak_rss_mib",
        label: "broker peak RSS MiB",
        higher_is_better: false,
    },
    Metric {
        key: "client_cores",
        label: "client CPU cores",
        higher_is_better: false,
    },
    Metric {
        key: "client_send_lag_p99_us",
        label: "client send lag p99 µs",
        higher_is_better: false,
    },
];

pub fn metric(key: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.key == key)
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    NotSupported(String),
    Failed,
    NotRun,
}

/// One broker's runs of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerRuns {
    pub status: Status,
    pub samples: Vec<Sample>,
    pub errors: Vec<String>,
    pub median: BTreeMap<String, f64>,
}

impl BrokerRuns {
    pub fn new(status: Status) -> Self {
        BrokerRuns {
            status,
            samples: Vec::new(),
            errors: Vec::new(),
            median: BTreeMap::new(),
        }
    }

    /// Medians of every metric over the successful samples; failed if any run failed.
    pub fn settle(&mut self) {
        if !matches!(self.status, Status::Ok | Status::NotRun) {
            return;
        }
        let mut keys: Vec<&String> = self.samples.iter().flat_map(|s| s.keys()).collect();
        keys.sort();
        keys.dedup();
        self.median = keys
            .into_iter()
            .map(|k| {
                let vals: Vec<f64> = self.samples.iter().filter_map(|s| s.get(k)).copied().collect();
                (k.clone(), median(vals))
            })
            .collect();
        self.status = if !self.errors.is_empty() {
            Status::Failed
        } else if self.samples.is_empty() {
            Status::NotRun
        } else {
            Status::Ok
        };
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub squall: BrokerRuns,
    pub nsqd: Option<BrokerRuns>,
    /// Squall median / nsqd median, per metric both have.
    pub ratios: BTreeMap<String, f64>,
}

impl ScenarioResult {
    pub fn runs(&self, f: Flavor) -> Option<&BrokerRuns> {
        match f {
            Flavor::Squall => Some(&self.squall),
            Flavor::Nsqd => self.nsqd.as_ref(),
        }
    }

    pub fn compute_ratios(&mut self) {
        self.ratios.clear();
        if let Some(n) = &self.nsqd {
            for (k, &s) in &self.squall.median {
                if let Some(&v) = n.median.get(k) {
                    if v > 0.0 && s.is_finite() {
                        self.ratios.insert(k.clone(), s / v);
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub mem_total_mib: u64,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
                .unwrap_or_default(),
            mem_total_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerInfo {
    pub flavor: Flavor,
    pub source: String,
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    pub squall_bench_version: &'static str,
    pub started_unix_s: u64,
    pub duration_s: f64,
    pub quick: bool,
    pub repetitions: usize,
    pub mem_queue_size: u64,
    pub machine: Machine,
    pub brokers: Vec<BrokerInfo>,
    pub scenarios: Vec<ScenarioResult>,
}

pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 10_000.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(runs: Option<&BrokerRuns>, key: &str) -> String {
    match runs {
        None => "(no --reference-nsqd)".into(),
        Some(r) => match &r.status {
            Status::NotSupported(why) => format!("not run: {why}"),
            Status::Failed => format!("failed: {}", r.errors.first().map(String::as_str).unwrap_or("?")),
            Status::NotRun => "not run".into(),
            Status::Ok => r.median.get(key).map_or("–".into(), |v| fmt_value(*v)),
        },
    }
}

/// The Markdown table: one row per scenario and metric.
pub fn markdown(r: &SuiteReport) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} × {} ({} MiB RAM), Linux {}. {} repetitions per broker and scenario, \
         alternating; medians shown.{}\n",
        m.nproc,
        m.cpu_model,
        m.mem_total_mib,
        m.kernel,
        r.repetitions,
        if r.quick { " (--quick)" } else { "" }
    );
    for b in &r.brokers {
        let _ = writeln!(s, "- {}: `{}` ({})", b.flavor.label(), b.source, b.version);
    }
    s.push('\n');
    s.push_str("| scenario | metric | Squall | nsqd | Squall/nsqd |\n");
    s.push_str("|---|---|---:|---:|---:|\n");
    for sr in &r.scenarios {
        let ok = |f| sr.runs(f).is_some_and(|b| matches!(b.status, Status::Ok));
        if !ok(Flavor::Squall) && !ok(Flavor::Nsqd) {
            let _ = writeln!(
                s,
                "| {} | – | {} | {} | – |",
                sr.scenario.name,
                cell(Some(&sr.squall), ""),
                cell(sr.nsqd.as_ref(), "")
            );
            continue;
        }
        for met in METRICS {
            let present = [Flavor::Squall, Flavor::Nsqd]
                .iter()
                .any(|&f| sr.runs(f).is_some_and(|b| b.median.contains_key(met.key)));
            if !present {
                continue;
            }
            let ratio = sr.ratios.get(met.key).map_or("–".to_string(), |x| {
                let good = (*x > 1.0) == met.higher_is_better;
                // The client's own numbers describe the measurement, not the broker: no verdict.
                let mark = if (x - 1.0).abs() < 0.05 || met.key.starts_with("client_") {
                    ""
                } else if good {
                    " ✓"
                } else {
                    " ✗"
                };
                format!("{x:.2}×{mark}")
            });
            let arrow = if met.higher_is_better { "↑" } else { "↓" };
            let _ = writeln!(
                s,
                "| {} | {} {arrow} | {} | {} | {ratio} |",
                sr.scenario.name,
                met.label,
                cell(Some(&sr.squall), met.key),
                cell(sr.nsqd.as_ref(), met.key),
            );
        }
    }
    s.push_str(
        "\n↑ higher is better, ↓ lower is better; ✓/✗ mark where Squall is better/worse by more \
         than 5 %. Broker CPU and peak RSS come from /proc/<pid>/stat and VmHWM of a fresh broker \
         process per run; client CPU cores = squall-bench's own CPU seconds / wall seconds. \
         \"not run\": the suite could not set that broker's flags (a broker it did not start).\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_value(1234567.4), "1,234,567");
        assert_eq!(fmt_value(123.4), "123");
        assert_eq!(fmt_value(1.234), "1.23");
    }
}
