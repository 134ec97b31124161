//! What one flush costs per dirty incident: encoding its snapshot and
//! building its read-model summary, for a small incident (one alert, as in
//! the engine bench), a large one (50 alerts and their timeline) and a full
//! one (50 alerts that resolved and fired again until the timeline reached
//! its cap of 200 entries, as the HTTP load scenario's incidents end up).
//! Figures are in benches/README.md.

mod allocator;

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use incidentd_actors::escalation::EscalationPolicies;
use incidentd_actors::model::{Alert, AlertStatus, Incident, IncidentId, Timestamp};
use incidentd_actors::routing::RouteSettings;
use incidentd_actors::{decode_incident, encode_incident, EngineSettings, IncidentRules};

/// An alert shaped like the load generator's Alertmanager alerts.
fn alert(instance: usize) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", "load-r1-17".to_string()),
        ("instance", format!("instance-{instance}")),
        ("severity", "critical".to_string()),
        ("job", "incidentd-load".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut alert = Alert::firing(labels);
    alert.summary = format!("load-r1-17 instance {instance}");
    alert
}

/// An incident opened by one alert and then joined by `alerts - 1` more,
/// each adding a timeline entry; then `cycles` times all of them resolve
/// and fire again an hour apart (two timeline entries per alert and cycle).
fn incident(alerts: usize, cycles: i64) -> Incident {
    let rules = IncidentRules::new(EscalationPolicies::default(), &EngineSettings::default());
    let route = Arc::new(RouteSettings::manual());
    let now = Timestamp::from_millis(1_800_000_000_000);
    let mut events = Vec::new();
    let mut incident = Incident::open(
        IncidentId::new(now),
        ("default", "root:{alertname=\"load-r1-17\"}"),
        &route,
        &alert(0),
        now,
        &rules,
        &mut events,
    );
    let rest = (1..alerts).map(alert).collect();
    incident.apply_alerts(rest, now, &rules, &mut events);
    let hour = 3_600_000;
    for cycle in 0..cycles {
        for (offset, status) in [(1, AlertStatus::Resolved), (2, AlertStatus::Firing)] {
            let at = Timestamp::from_millis(now.millis() + (2 * cycle + offset) * hour);
            let batch = (0..alerts).map(|i| Alert { status, ..alert(i) }).collect();
            incident.apply_alerts(batch, at, &rules, &mut events);
        }
    }
    incident
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    for (name, alerts, cycles) in [("small", 1, 0), ("large", 50, 0), ("full", 50, 2)] {
        let incident = incident(alerts, cycles);
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
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_incident("bench", &bytes).expect("decodes"))
        });
        group.bench_function(format!("summary/{name}"), |b| b.iter(|| incident.summary()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
