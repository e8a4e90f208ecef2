//! `squall-bench suite`: the same scenario matrix against Squall and (with `--reference-nsqd`)
//! nsqd, in one run, alternating brokers, each run on a fresh broker process.
//!
//! - `broker`: spawning brokers with matching flags, temp data dirs and free loopback ports.
//! - `scenario`: the matrix and how one scenario runs once.
//! - `report`: medians, Squall/nsqd ratios, JSON and Markdown.
//! - `chart`: SVG charts.

mod broker;
mod chart;
mod report;
mod scenario;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use broker::{Broker, BrokerFlags, Flavor, Source};
use report::{BrokerInfo, BrokerRuns, Machine, ScenarioResult, Status, SuiteReport};
use scenario::{MatrixSettings, Mode};

#[derive(Args, Clone)]
pub struct SuiteArgs {
    /// squalld binary to spawn (default: `squalld` next to this executable).
    #[arg(long)]
    squalld: Option<PathBuf>,
    /// Use an already-running Squall at this address instead of spawning squalld (memory-mode
    /// scenarios only; topics are unique per run).
    #[arg(long)]
    squall_address: Option<String>,
    /// The pid of the broker at --squall-address, to measure its CPU and RSS.
    #[arg(long)]
    squall_pid: Option<u32>,
    /// An nsqd binary to run the same matrix against (e.g. nsqd v1.3.0).
    #[arg(long)]
    reference_nsqd: Option<PathBuf>,
    /// About one minute: shorter runs, smaller counts.
    #[arg(long)]
    quick: bool,
    /// Repetitions per scenario and broker.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Where results.json, results.md and the SVG charts go.
    #[arg(long, default_value = "squall-bench-results")]
    out: PathBuf,
    /// Run only scenarios whose name contains one of these (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// --mem-queue-size for memory-mode scenarios.
    #[arg(long, default_value_t = 10_000_000)]
    mem_queue_size: u64,
    /// Fixed publish rate of the latency scenario, msgs/s.
    #[arg(long, default_value_t = 50_000.0)]
    latency_rate: f64,
    /// Idle connections in the connections scenario (10,000, or 1,000 with --quick).
    #[arg(long)]
    connections: Option<usize>,
    /// Multiply every message count (smoke tests use a small fraction).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

pub fn run(args: SuiteArgs) -> Result<()> {
    if args.reps == 0 || args.scale.is_nan() || args.scale <= 0.0 {
        bail!("--reps and --scale must be positive");
    }
    let squall = match (&args.squall_address, &args.squalld) {
        (Some(addr), _) => Source::Running(crate::wire::resolve(addr)?, args.squall_pid),
        (None, Some(p)) => Source::Binary(p.clone()),
        (None, None) => Source::Binary(
            crate::exe_dir()
                .context("cannot find this executable's directory")?
                .join("squalld"),
        ),
    };
    if let Source::Binary(p) = &squall {
        if !p.is_file() {
            bail!(
                "squalld not found at {} (build it with `cargo build --release --bin squalld`, \
                 or pass --squalld PATH or --squall-address ADDR)",
                p.display()
            );
        }
    }
    let nsqd = match &args.reference_nsqd {
        Some(p) if !p.is_file() => bail!("--reference-nsqd {} is not a file", p.display()),
        Some(p) => Some(Source::Binary(p.clone())),
        None => None,
    };
    let external_squall = matches!(squall, Source::Running(..));
    crate::procfs::raise_fd_limit();

    let settings = MatrixSettings {
        quick: args.quick,
        scale: args.scale,
        latency_rate: args.latency_rate,
        connections: args.connections.unwrap_or(if args.quick { 1000 } else { 10_000 }),
    };
    let scenarios: Vec<_> = scenario::matrix(&settings)
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    if scenarios.is_empty() {
        bail!("no scenario matches --only {:?}", args.only);
    }

    let mut results: Vec<ScenarioResult> = scenarios
        .iter()
        .map(|sc| {
            let squall_status = if sc.mode == Mode::Disk && external_squall {
                Status::NotSupported("a running broker's queue size is not ours to set".into())
            } else if sc.idle_flush && external_squall {
                Status::NotSupported("a running broker's flags are not ours to set".into())
            } else {
                Status::NotRun
            };
            ScenarioResult {
                scenario: sc.clone(),
                squall: BrokerRuns::new(squall_status),
                nsqd: nsqd.as_ref().map(|_| BrokerRuns::new(Status::NotRun)),
                ratios: Default::default(),
            }
        })
        .collect();

    // Plan: per scenario and repetition, both brokers, the first one alternating.
    let mut plan = Vec::new();
    for (i, r) in results.iter().enumerate() {
        for rep in 0..args.reps {
            let order = if rep % 2 == 0 {
                [Flavor::Squall, Flavor::Nsqd]
            } else {
                [Flavor::Nsqd, Flavor::Squall]
            };
            for f in order {
                if r.runs(f).is_some_and(|b| matches!(b.status, Status::NotRun)) {
                    plan.push((i, rep, f));
                }
            }
        }
    }

    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bar = ProgressBar::new(plan.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    for (run_id, &(i, rep, flavor)) in plan.iter().enumerate() {
        let sc = &scenarios[i];
        bar.set_message(format!("{} · {} · rep {}", sc.name, flavor.label(), rep + 1));
        let source = match flavor {
            Flavor::Squall => &squall,
            Flavor::Nsqd => nsqd.as_ref().expect("planned only with --reference-nsqd"),
        };
        let flags = BrokerFlags {
            mem_queue_size: match sc.mode {
                Mode::Memory => args.mem_queue_size,
                Mode::Disk => 0,
            },
            idle_flush: sc.idle_flush,
        };
        let topic = format!("sb_{}_{run_id}", std::process::id());
        let outcome = Broker::start(flavor, source, flags).and_then(|mut b| {
            let res = scenario::run_once(sc, &b, &topic);
            let res = match res {
                Err(e) if !b.alive() => Err(e.context(format!("broker died: {}", b.log_tail()))),
                other => other,
            };
            b.stop();
            res
        });
        let runs = match flavor {
            Flavor::Squall => &mut results[i].squall,
            Flavor::Nsqd => results[i].nsqd.as_mut().expect("planned"),
        };
        match outcome {
            Ok(sample) => runs.samples.push(sample),
            Err(e) => {
                bar.println(format!("{} · {}: {e:#}", sc.name, flavor.label()));
                runs.errors.push(format!("{e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    for r in &mut results {
        r.squall.settle();
        if let Some(n) = &mut r.nsqd {
            n.settle();
        }
        r.compute_ratios();
    }
    let source_text = |s: &Source| match s {
        Source::Binary(p) => p.display().to_string(),
        Source::Running(a, _) => format!("running at {a}"),
    };
    let mut brokers = vec![BrokerInfo {
        flavor: Flavor::Squall,
        source: source_text(&squall),
        version: broker::version(&squall),
    }];
    if let Some(n) = &nsqd {
        brokers.push(BrokerInfo {
            flavor: Flavor::Nsqd,
            source: source_text(n),
            version: broker::version(n),
        });
    }
    let report = SuiteReport {
        squall_bench_version: env!("CARGO_PKG_VERSION"),
        started_unix_s,
        duration_s: started.elapsed().as_secs_f64(),
        quick: args.quick,
        repetitions: args.reps,
        mem_queue_size: args.mem_queue_size,
        machine: Machine::probe(),
        brokers,
        scenarios: results,
    };

    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let md = report::markdown(&report);
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(args.out.join("results.md"), &md)?;
    let charts = chart::write_all(&report, &args.out)?;
    println!("{md}");
    println!(
        "suite took {:.0}s; wrote results.json, results.md{} in {}",
        report.duration_s,
        charts.iter().map(|c| format!(", {c}")).collect::<String>(),
        args.out.display()
    );
    let failed = report
        .scenarios
        .iter()
        .flat_map(|s| [Some(&s.squall), s.nsqd.as_ref()])
        .flatten()
        .filter(|r| matches!(r.status, Status::Failed))
        .count();
    if failed > 0 {
        bail!("{failed} scenario/broker combinations failed (see the table)");
    }
    Ok(())
}
