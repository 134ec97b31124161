//! `incidentd-load run <scenario.toml> [--out DIR]`: sends alerts to a
//! local incidentd as the scenario says, measures acknowledged throughput
//! and the latency from send to the `created` event on the SSE stream, and
//! writes `result.json` and `plot.svg`.

mod generate;
mod http;
mod kafka;
mod metrics_page;
mod observe;
mod observe_topic;
mod pace;
mod record;
mod report;
mod scenario;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::generate::{Generator, Shape};
use crate::record::Recorder;
use crate::report::{Alerts, Durable, EventsPublished, Groups, Report, Series, Sse};
use crate::scenario::{Mode, Scenario};

#[derive(Parser)]
#[command(
    name = "incidentd-load",
    version,
    about = "Load generator for incidentd"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario file.
    Run {
        /// The scenario (TOML); see load-tests/scenarios/.
        scenario: PathBuf,
        /// Where result.json and plot.svg go (default load-results/<run id>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run { scenario, out } => runtime.block_on(run(scenario, out)),
    }
}

async fn run(path: PathBuf, out: Option<PathBuf>) -> anyhow::Result<()> {
    let scenario = Scenario::load(&path)?;
    let run_id = ulid::Ulid::new().to_string().to_lowercase();
    let out = out.unwrap_or_else(|| PathBuf::from("load-results").join(&run_id));
    let seed = scenario
        .seed
        .unwrap_or_else(|| ulid::Ulid::new().random() as u64);
    let mut gen = Generator::new(&run_id, Shape::of(&scenario), seed);
    let metrics_url = format!("{}/metrics", scenario.base_url());
    let producer = match scenario.mode {
        Mode::Kafka => {
            let producer = kafka::producer(&scenario)?;
            kafka::warm_up(&scenario, &producer, &run_id, &metrics_url).await?;
            Some(producer)
        }
        _ => None,
    };
    let started_at = chrono::Utc::now().to_rfc3339();
    let recorder = Arc::new(Recorder::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let observing = match (&scenario.observe, &scenario.events_topic) {
        (false, _) => None,
        (true, Some(topic)) => Some(
            observe_topic::start(topic, gen.prefix(), recorder.clone(), stop_rx)
                .await
                .context("the events topic is needed to measure latency")?,
        ),
        (true, None) => {
            let (observer, stream) =
                observe::Observer::connect(&scenario.base_url(), gen.prefix(), recorder.clone())
                    .await
                    .context(
                        "the SSE stream is needed to measure latency (or set observe = false)",
                    )?;
            Some(tokio::spawn(observer.run(stream, stop_rx)))
        }
    };
    let events_before = published_events(&metrics_url).await;
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampler = (scenario.mode == Mode::Kafka).then(|| {
        kafka::sample_durable(metrics_url.clone(), recorder.clone(), stop_sampler.clone())
    });
    let progress = progress_bar(&scenario, recorder.clone());

    let send_start = Instant::now();
    match &producer {
        Some(producer) => kafka::run(&scenario, producer, &mut gen, recorder.clone()).await?,
        None => http::run(&scenario, &mut gen, recorder.clone()).await?,
    }

    // Drain: wait for the outstanding `created` events (and, with the
    // sampler, for the durable count), at most drain_timeout.
    let drain_until = Instant::now() + scenario.drain_timeout;
    let mut durable_done: Option<f64> = None;
    while Instant::now() < drain_until {
        let acked = Recorder::get(&recorder.acked_alerts);
        if durable_done.is_none() {
            if let Some((t, n)) = recorder.last_durable() {
                if n >= acked && acked > 0 {
                    durable_done = Some(t);
                }
            }
        }
        let observed = observing.is_none() || recorder.pending_groups() == 0;
        if observed && (sampler.is_none() || durable_done.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let events_published = match (events_before, published_events(&metrics_url).await) {
        (Some(before), Some(after)) if after > before => {
            let seconds = send_start.elapsed().as_secs_f64();
            Some(EventsPublished {
                events: after - before,
                seconds,
                events_per_s: (after - before) as f64 / seconds,
            })
        }
        _ => None,
    };
    stop_sampler.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(observing) = observing {
        let _ = observing.await;
    }
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    progress.finish_and_clear();

    let offset = recorder.elapsed_at(send_start);
    let send_seconds = recorder
        .last_ack()
        .map(|t| t.saturating_duration_since(send_start).as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-3);
    let acked = Recorder::get(&recorder.acked_alerts);
    let durable = (!recorder.durable().is_empty()).then(|| {
        let (last_t, last_n) = recorder.last_durable().unwrap_or_default();
        let complete = durable_done.is_some();
        let seconds = (durable_done.unwrap_or(last_t) - offset).max(1e-3);
        Durable {
            alerts: last_n,
            seconds,
            complete,
            alerts_per_s: last_n as f64 / seconds,
        }
    });
    let latencies = recorder.latencies();
    let samples: Vec<f64> = latencies.iter().map(|p| p.1).collect();
    let groups_sent = Recorder::get(&recorder.groups_sent);
    let groups_observed = Recorder::get(&recorder.groups_observed);
    let report = Report {
        run_id,
        started_at,
        scenario,
        send_seconds,
        alerts: Alerts {
            sent: Recorder::get(&recorder.sent_alerts),
            acked,
            failed: Recorder::get(&recorder.failed_alerts),
            requests: Recorder::get(&recorder.requests),
        },
        generated: gen.stats,
        throughput_alerts_per_s: acked as f64 / send_seconds,
        durable,
        events_published,
        latency_ms: report::latency(&samples),
        ack_latency_ms: report::latency(&recorder.ack_latencies()),
        groups: Groups {
            sent: groups_sent,
            observed: groups_observed,
            missing: groups_sent.saturating_sub(groups_observed),
        },
        sse: Sse {
            unmatched_created_events: Recorder::get(&recorder.unmatched_events),
            resets: Recorder::get(&recorder.resets),
            reconnects: Recorder::get(&recorder.reconnects),
        },
        errors: recorder.errors(),
        series: Series {
            acked_per_second: recorder.acked_per_second(),
            durable: recorder.durable(),
            latency: latencies,
        },
    };
    print!("{}", report.summary());
    report.write(&out)?;
    println!("wrote {}/result.json and plot.svg", out.display());
    Ok(())
}

/// Events the service's broker topics acknowledged so far, if it has any.
async fn published_events(metrics_url: &str) -> Option<u64> {
    let client = reqwest::Client::new();
    let page = metrics_page::fetch(&client, metrics_url).await?;
    let acked = Some("outcome=\"acked\"");
    Some(metrics_page::counter(
        &page,
        "incidentd_events_published_total",
        acked,
    ))
}

/// A progress bar over the send phase, hidden when stdout is not a terminal.
fn progress_bar(scenario: &Scenario, recorder: Arc<Recorder>) -> ProgressBar {
    let total = scenario.duration.as_secs().max(1);
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len}s {msg}").expect("valid template"),
    );
    let ticking = bar.clone();
    tokio::spawn(async move {
        while !ticking.is_finished() {
            let acked = Recorder::get(&recorder.acked_alerts);
            let elapsed = recorder.start.elapsed().as_secs_f64().max(1e-3);
            ticking.set_position((elapsed as u64).min(total));
            ticking.set_message(format!(
                "acked {acked} ({:.0}/s)  groups seen {}/{}  failed {}",
                acked as f64 / elapsed,
                Recorder::get(&recorder.groups_observed),
                Recorder::get(&recorder.groups_sent),
                Recorder::get(&recorder.failed_alerts),
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    bar
}
