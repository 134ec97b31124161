//! Shared setup for the engine benches: an engine with an in-memory store
//! and a sink that drops events, fed through the public API.

#![allow(dead_code)] // each bench uses a different part of this module

use std::sync::Arc;

use async_trait::async_trait;
use incidentd_actors::model::{Alert, IncidentEvent, Labels};
use incidentd_actors::ports::memory::MemoryStore;
use incidentd_actors::ports::{EventSink, TokioClock};
use incidentd_actors::routing::RouteConfig;
use incidentd_actors::{compile_rules, Engine, EngineSettings, Ports};

pub struct NullSink;

#[async_trait]
impl EventSink for NullSink {
    fn publish(&self, _events: &[IncidentEvent]) {}
}

/// The default settings, with passivation on or off and room for every
/// batch in flight.
pub fn settings(passivation: bool) -> EngineSettings {
    let mut settings = EngineSettings {
        shard_capacity: 1_000_000,
        ..EngineSettings::default()
    };
    settings.passivation.enabled = passivation;
    settings
}

pub async fn engine(settings: EngineSettings) -> Engine {
    let routing: RouteConfig = toml::from_str("group_by = [\"alertname\"]").expect("route config");
    let (tree, policies) = compile_rules(&routing, Vec::new()).expect("rules");
    let ports = Ports {
        store: Arc::new(MemoryStore::default()),
        sink: Arc::new(NullSink),
        clock: Arc::new(TokioClock::new()),
    };
    Engine::start(settings, tree, policies, ports)
        .await
        .expect("engine")
        .0
}

/// A firing alert of group `group` (its alertname), one fingerprint per group.
pub fn alert(group: usize) -> Alert {
    let labels: Labels = [("alertname".into(), format!("alert-{group}").into())].into();
    Alert::firing(labels)
}

/// Alert `instance` of group `group`: one fingerprint per pair, so a group's
/// incident holds one alert per instance.
pub fn instance_alert(group: usize, instance: usize) -> Alert {
    let labels: Labels = [
        ("alertname".into(), format!("alert-{group}").into()),
        ("instance".into(), format!("host-{instance}").into()),
    ]
    .into();
    Alert::firing(labels)
}

/// Submits `alerts` in batches of `batch`, `concurrency` batches in flight.
pub async fn submit_all(
    engine: &Arc<Engine>,
    alerts: Vec<Alert>,
    batch: usize,
    concurrency: usize,
) {
    let mut chunks: Vec<Vec<Alert>> = Vec::new();
    let mut alerts = alerts.into_iter().peekable();
    while alerts.peek().is_some() {
        chunks.push(alerts.by_ref().take(batch).collect());
    }
    let chunks = Arc::new(std::sync::Mutex::new(chunks));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let engine = engine.clone();
        let chunks = chunks.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = chunks.lock().unwrap().pop() else {
                    break;
                };
                engine.submit(chunk).await.expect("submit");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
}
