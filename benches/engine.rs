//! Alerts per second through the engine, in process: duplicates of live
//! incidents (spread one per incident over the batch, or grouped as
//! Prometheus re-sends a rule's firing alerts) and alerts that open new
//! incidents, with 10k and 100k live incidents; and spread duplicates with
//! the Helm chart's cap on running actors, which they overrun. Each submit waits until its alerts are stored (in memory), as
//! HTTP ingest does. Building the alerts (labels, fingerprints) is the
//! sender's work and is not timed. Figures and machine are written in
//! benches/README.md.

mod allocator;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use incidentd_actors::{Engine, EngineSettings};

const BATCH: usize = 1_000;
const CONCURRENCY: usize = 16;
const ALERTS_PER_ITER: usize = 50_000;
/// Alerts (instances) per incident in the grouped duplicates case: every
/// evaluation, Prometheus re-sends each firing alert of a rule, so an
/// incident grouped by alertname gets all its instances in one batch.
const INSTANCES: usize = 10;

/// New incidents opened on one engine before the bench starts over on a
/// fresh one (untimed): a resident incident costs ~13 KB, and a fast run
/// once opened enough of them to exhaust the machine's memory.
const MAX_OPENED: usize = 500_000;

/// The Helm chart's default `engine.maxResidentPerShard`.
const HELM_MAX_RESIDENT: usize = 5_000;

/// An engine holding `live` incidents, one alert each.
fn seeded(runtime: &tokio::runtime::Runtime, settings: EngineSettings, live: usize) -> Arc<Engine> {
    let engine = Arc::new(runtime.block_on(support::engine(settings)));
    let seed: Vec<_> = (0..live).map(support::alert).collect();
    runtime.block_on(support::submit_all(&engine, seed, BATCH, CONCURRENCY));
    engine
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ALERTS_PER_ITER as u64));
    for passivation in [false, true] {
        for live in [10_000usize, 100_000] {
            let mut engine = seeded(&runtime, support::settings(passivation), live);
            let mode = if passivation {
                "passivation"
            } else {
                "resident"
            };
            spread_duplicates(&mut group, &runtime, &engine, mode, live);

            // Each group's incident takes its instances (untimed), then
            // every iteration re-sends whole groups, consecutive in the batch.
            let instances: Vec<_> = (0..live)
                .flat_map(|group| (0..INSTANCES).map(move |i| support::instance_alert(group, i)))
                .collect();
            runtime.block_on(support::submit_all(&engine, instances, BATCH, CONCURRENCY));
            let mut next_group = 0usize;
            group.bench_function(format!("duplicates_grouped/{mode}/{live}_live"), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let alerts = (0..ALERTS_PER_ITER / INSTANCES)
                            .flat_map(|g| {
                                let group = (next_group + g) % live;
                                (0..INSTANCES).map(move |i| support::instance_alert(group, i))
                            })
                            .collect();
                        next_group = (next_group + ALERTS_PER_ITER / INSTANCES) % live;
                        let started = Instant::now();
                        runtime.block_on(support::submit_all(&engine, alerts, BATCH, CONCURRENCY));
                        took += started.elapsed();
                    }
                    took
                })
            });

            let mut opened = 0usize;
            group.bench_function(format!("new_incidents/{mode}/{live}_live"), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        if opened >= MAX_OPENED {
                            runtime.block_on(engine.shutdown());
                            engine = seeded(&runtime, support::settings(passivation), live);
                            opened = 0;
                        }
                        let first = live + opened;
                        let alerts = (first..first + ALERTS_PER_ITER)
                            .map(support::alert)
                            .collect();
                        let started = Instant::now();
                        runtime.block_on(support::submit_all(&engine, alerts, BATCH, CONCURRENCY));
                        took += started.elapsed();
                        opened += ALERTS_PER_ITER;
                    }
                    took
                })
            });
            runtime.block_on(engine.shutdown());
        }
    }

    // Ten times as many live incidents as the chart lets run: most
    // duplicates wake a passivated incident, and sweeps passivate the least
    // recently used again.
    let live = 100_000;
    let mut settings = support::settings(true);
    settings.passivation.max_resident = HELM_MAX_RESIDENT;
    let engine = seeded(&runtime, settings, live);
    spread_duplicates(&mut group, &runtime, &engine, "crowded", live);
    runtime.block_on(engine.shutdown());
    group.finish();
}

/// Duplicates of `live` incidents, spread one per incident over each batch.
fn spread_duplicates(
    group: &mut BenchmarkGroup<WallTime>,
    runtime: &tokio::runtime::Runtime,
    engine: &Arc<Engine>,
    mode: &str,
    live: usize,
) {
    let mut cursor = 0usize;
    group.bench_function(format!("duplicates/{mode}/{live}_live"), |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let alerts = (0..ALERTS_PER_ITER)
                    .map(|i| support::alert((cursor + i * 7919) % live))
                    .collect();
                cursor += 1;
                let started = Instant::now();
                runtime.block_on(support::submit_all(engine, alerts, BATCH, CONCURRENCY));
                took += started.elapsed();
            }
            took
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
