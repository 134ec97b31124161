//! Escalation timing under load: how late a due escalation step fires while
//! a million other timers are armed.
//!
//!   cargo bench --bench escalation              (1,000,000 armed timers)
//!   cargo bench --bench escalation -- 100000    (another count)
//!   cargo bench --bench escalation -- 1000000 0 (and `max_resident` 0:
//!                                                the shards fire every step
//!                                                on passivated incidents)
//!
//! First N quiet incidents are opened, each with an armed acknowledgement
//! timeout an hour away (passivated, as they would be in production). Then
//! 10,000 paging incidents are opened at 1,000 per second; each pages at
//! once and escalates to its second step 20 s later. The lateness of a step
//! is the time its event carries minus its deadline (the incident's creation
//! plus 20 s), in the engine's millisecond clock.

mod allocator;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use incidentd_actors::escalation::EscalationPolicy;
use incidentd_actors::model::{Alert, Change, IncidentEvent};
use incidentd_actors::ports::memory::MemoryStore;
use incidentd_actors::ports::{EventSink, TokioClock};
use incidentd_actors::routing::RouteConfig;
use incidentd_actors::{compile_rules, Engine, EngineSettings, Ports};

const PAGING: usize = 10_000;
const SECOND_STEP_AFTER: Duration = Duration::from_secs(20);

/// Keeps the lateness of every second step that fired, in milliseconds.
#[derive(Default)]
struct LatenessSink {
    late_ms: Mutex<Vec<i64>>,
}

#[async_trait]
impl EventSink for LatenessSink {
    fn publish(&self, events: &[IncidentEvent]) {
        for event in events {
            if let Change::Escalated { step: 1, .. } = event.change {
                let due = event.incident.created_at.millis() + SECOND_STEP_AFTER.as_millis() as i64;
                self.late_ms.lock().unwrap().push(event.time.millis() - due);
            }
        }
    }
}

async fn engine(sink: Arc<LatenessSink>, max_resident: Option<usize>) -> Engine {
    let routing: RouteConfig = toml::from_str(
        r#"
group_by = ["alertname"]
ack_timeout = "1h"
[[routes]]
id = "paging"
matchers = ['page="yes"']
policies = { default = "page" }
"#,
    )
    .expect("route config");
    let policy: EscalationPolicy = toml::from_str(&format!(
        r#"
id = "page"
[[steps]]
escalate_after = "{}s"
targets = ["user:oncall"]
channels = ["log"]
[[steps]]
escalate_after = "1h"
targets = ["team:ops"]
channels = ["log"]
"#,
        SECOND_STEP_AFTER.as_secs()
    ))
    .expect("policy");
    let (tree, policies) = compile_rules(&routing, vec![policy]).expect("rules");
    let mut settings = EngineSettings {
        shard_capacity: 1_000_000,
        flush_interval: Duration::from_millis(5),
        ..EngineSettings::default()
    };
    if let Some(max_resident) = max_resident {
        settings.passivation.max_resident = max_resident;
    }
    let ports = Ports {
        store: Arc::new(MemoryStore::default()),
        sink,
        clock: Arc::new(TokioClock::new()),
    };
    Engine::start(settings, tree, policies, ports)
        .await
        .expect("engine")
        .0
}

fn paging_alert(n: usize) -> Alert {
    let mut alert = support::alert(n);
    alert
        .labels
        .insert("alertname".into(), format!("page-{n}").into());
    alert.labels.insert("page".into(), "yes".into());
    alert
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    // cargo passes `--bench`; the numbers are ours.
    let mut numbers = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let armed: usize = numbers
        .next()
        .map(|a| a.parse().expect("armed timer count"))
        .unwrap_or(1_000_000);
    let max_resident: Option<usize> = numbers
        .next()
        .map(|a| a.parse().expect("max_resident per shard"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sink = Arc::new(LatenessSink::default());
    let engine = Arc::new(runtime.block_on(engine(sink.clone(), max_resident)));

    let started = Instant::now();
    let quiet = (0..armed).map(support::alert).collect();
    runtime.block_on(support::submit_all(&engine, quiet, 1_000, 16));
    println!(
        "armed {armed} timers in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for batch in 0..PAGING / 100 {
            tick.tick().await;
            let alerts = (batch * 100..(batch + 1) * 100).map(paging_alert).collect();
            engine.submit(alerts).await.expect("submit");
        }
        let deadline = Instant::now() + SECOND_STEP_AFTER + Duration::from_secs(60);
        while sink.late_ms.lock().unwrap().len() < PAGING && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let mut late = sink.late_ms.lock().unwrap().clone();
    late.sort_unstable();
    assert_eq!(
        late.len(),
        PAGING,
        "every paging incident reached its second step"
    );
    println!(
        "armed={armed} steps={} lateness_ms p50={} p90={} p99={} max={}",
        late.len(),
        percentile(&late, 0.50),
        percentile(&late, 0.90),
        percentile(&late, 0.99),
        late[late.len() - 1]
    );
}
