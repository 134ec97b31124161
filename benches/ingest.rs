//! Decoding cost of an ingest body of 100 alerts shaped like the load
//! generator's: an Alertmanager API v2 request, and a native JSON array
//! (the native HTTP format and Kafka and Pulsar messages); and an
//! Alertmanager API v2 request as Prometheus sends it, every alert with
//! `startsAt`, `endsAt` and `generatorURL`. Figures are in benches/README.md.

mod allocator;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use incidentd::ingest::{decode_alertmanager_v2, decode_native_json};
use incidentd_actors::model::Timestamp;

/// The extra fields of an alert in a JSON array of them.
enum Shape {
    /// As the load generator sends a firing alert.
    Generator,
    /// With the native format's `status`.
    Native,
    /// As Prometheus sends one: its times and where it came from.
    Prometheus,
}

/// `alerts` alerts as a JSON array, with the fields `shape` adds.
fn body(alerts: usize, shape: Shape) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            let mut alert = serde_json::json!({
                "labels": {
                    "alertname": format!("load-r1-{}", i % 20),
                    "instance": format!("instance-{i}"),
                    "severity": "critical",
                    "job": "incidentd-load",
                },
                "annotations": {"summary": format!("load-r1-{} instance {i}", i % 20)},
            });
            match shape {
                Shape::Generator => {}
                Shape::Native => alert["status"] = "firing".into(),
                Shape::Prometheus => {
                    alert["startsAt"] = "2027-01-15T08:00:00.123456789Z".into();
                    alert["endsAt"] = "2027-01-15T08:04:00.123456789Z".into();
                    alert["generatorURL"] =
                        "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1".into();
                }
            }
            alert
        })
        .collect();
    serde_json::to_vec(&items).expect("JSON")
}

fn bench(c: &mut Criterion) {
    let body_v2 = body(100, Shape::Generator);
    let body_native = body(100, Shape::Native);
    let body_prometheus = body(100, Shape::Prometheus);
    let now = Timestamp::from_millis(1_800_000_000_000);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(100));
    for (name, body) in [
        ("alertmanager_v2/100_alerts", &body_v2),
        ("alertmanager_v2_prometheus/100_alerts", &body_prometheus),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let decoded = decode_alertmanager_v2(body, now, Duration::from_secs(300))
                    .expect("a valid body");
                assert_eq!(decoded.accepted.len(), 100);
                decoded
            })
        });
    }
    group.bench_function("native_json/100_alerts", |b| {
        b.iter(|| {
            let decoded = decode_native_json(&body_native).expect("a valid body");
            assert_eq!(decoded.accepted.len(), 100);
            decoded
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
