//! What one incident event costs per receiver on its way out: SSE clients
//! and webhook subscriptions each used to serialize it themselves; now each
//! form is made once per event and shared (`bus::SharedEvent`). The event
//! is the `alert_added` of a 50-alert incident; labels and summary as the
//! load generator's. Figures are in benches/README.md.

mod allocator;
mod load_incident;

use criterion::{criterion_group, criterion_main, Criterion};
use incidentd::bus::SharedEvent;
use incidentd::sinks::CloudEvent;
use incidentd_actors::model::IncidentEvent;

/// How many SSE clients (or subscriptions) receive each event.
const RECEIVERS: usize = 20;

/// One encoded form of an event: as each receiver made it before (its
/// length, so the work is not optimised away), and as shared now.
struct Form {
    name: &'static str,
    each_encodes: fn(&IncidentEvent) -> usize,
    shared: fn(&SharedEvent) -> usize,
}

fn bench(c: &mut Criterion) {
    // The last event of an incident that 50 alerts joined.
    let (_, mut events) = load_incident::incident(50, 0);
    let event = events.pop().expect("alert_added events");
    let mut group = c.benchmark_group(format!("fanout/{RECEIVERS}_receivers"));
    let forms = [
        Form {
            name: "sse",
            each_encodes: |event| serde_json::to_string(event).unwrap().len(),
            shared: |shared| shared.json().len(),
        },
        Form {
            name: "cloudevent",
            each_encodes: |event| CloudEvent::of(event).to_json().len(),
            shared: |shared| shared.cloudevent().len(),
        },
    ];
    for form in forms {
        eprintln!("{}: {} bytes", form.name, (form.each_encodes)(&event));
        group.bench_function(format!("{}/each_encodes", form.name), |b| {
            b.iter(|| {
                (0..RECEIVERS)
                    .map(|_| (form.each_encodes)(&event))
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("{}/shared", form.name), |b| {
            b.iter(|| {
                let shared = SharedEvent::new(event.clone());
                (0..RECEIVERS)
                    .map(|_| (form.shared)(&shared))
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
