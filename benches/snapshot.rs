//! What one flush costs per dirty incident: encoding its snapshot and
//! building its read-model summary, for a small incident (one alert, as in
//! the engine bench), a large one (50 alerts and their timeline) and a full
//! one (50 alerts that resolved and fired again until the timeline reached
//! its cap of 200 entries, as the HTTP load scenario's incidents end up).
//! `changes/*` prices what a commit writes instead once the incident is
//! stored: the change frame after one duplicate alert; `counts/*` the
//! counts frame the commit writes for it when only duplicates came.
//! Figures are in benches/README.md.

mod allocator;
mod load_incident;

use criterion::{criterion_group, criterion_main, Criterion};
use incidentd_actors::model::Timestamp;
use incidentd_actors::{decode_incident, encode_changes, encode_counts, encode_incident};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    for (name, alerts, cycles) in [("small", 1, 0), ("large", 50, 0), ("full", 50, 2)] {
        let (incident, _) = load_incident::incident(alerts, cycles);
        let bytes = encode_incident(&incident);
        eprintln!(
            "{name}: {} alerts, {} timeline entries, {} bytes encoded",
            incident.alerts.len(),
            incident.timeline.len(),
            bytes.len()
        );
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode_incident(&incident))
        });
        // One duplicate since the last snapshot: one alert's count and time.
        let mut changed = incident.clone();
        let latest = changed.alerts.values().map(|a| a.last_seen).max();
        let since = Timestamp::from_millis(latest.expect("has alerts").millis() + 1);
        let duplicate = changed.alerts.values_mut().next().expect("has alerts");
        duplicate.count += 1;
        duplicate.last_seen = since;
        let seq = changed.seq;
        eprintln!(
            "{name}: change frame after one duplicate: {} bytes",
            encode_changes(&mut changed, since, seq).len()
        );
        group.bench_function(format!("changes/{name}"), |b| {
            b.iter(|| encode_changes(&mut changed, since, seq))
        });
        eprintln!(
            "{name}: counts frame after one duplicate: {} bytes",
            encode_counts(&changed, since).len()
        );
        group.bench_function(format!("counts/{name}"), |b| {
            b.iter(|| encode_counts(&changed, since))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_incident("bench", &bytes).expect("decodes"))
        });
        group.bench_function(format!("summary/{name}"), |b| b.iter(|| incident.summary()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
