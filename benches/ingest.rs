//! Decoding cost of an HTTP ingest body: one Alertmanager API v2 request
//! of 100 alerts shaped like the load generator's. Figures are in
//! benches/README.md.

mod allocator;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use incidentd::ingest::decode_alertmanager_v2;
use incidentd_actors::model::Timestamp;

fn body(alerts: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            serde_json::json!({
                "labels": {
                    "alertname": format!("load-r1-{}", i % 20),
                    "instance": format!("instance-{i}"),
                    "severity": "critical",
                    "job": "incidentd-load",
                },
                "annotations": {"summary": format!("load-r1-{} instance {i}", i % 20)},
            })
        })
        .collect();
    serde_json::to_vec(&items).expect("JSON")
}

fn bench(c: &mut Criterion) {
    let body = body(100);
    let now = Timestamp::from_millis(1_800_000_000_000);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(100));
    group.bench_function("alertmanager_v2/100_alerts", |b| {
        b.iter(|| {
            let decoded =
                decode_alertmanager_v2(&body, now, Duration::from_secs(300)).expect("a valid body");
            assert_eq!(decoded.accepted.len(), 100);
            decoded
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
