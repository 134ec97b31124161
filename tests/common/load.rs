//! Traffic for the tests that break something while alerts flow: rounds of
//! alerts, each sent again until the service takes it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// A native alert of group `alertname`; `instance` makes it a distinct
/// alert (fingerprint) of that group.
pub fn native_alert(alertname: &str, instance: usize, severity: &str) -> Value {
    json!({
        "status": "firing",
        "severity": severity,
        "labels": {"alertname": alertname, "instance": format!("i{instance}"), "severity": severity},
        "annotations": {"summary": format!("{alertname} on i{instance}")},
    })
}

/// A PagerDuty Events v2 event of `action` for `dedup_key` (the payload
/// only matters to a trigger).
pub fn pagerduty_event(action: &str, dedup_key: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "routing_key": "r1",
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": {"summary": "disk full", "source": "db1", "severity": "critical"},
    }))
    .expect("JSON values encode")
}

/// Sends `rounds` rounds of one new alert for each of `groups` groups
/// (named `<prefix><n>`) to `base`'s ingest, each round again until it is
/// answered 2xx: the service may be down, restarting or refusing (503)
/// for a while. Panics if a round is not taken within `patience`.
pub fn alert_rounds(
    base: &str,
    prefix: &str,
    rounds: usize,
    groups: usize,
    patience: Duration,
) -> JoinHandle<()> {
    let url = format!("{base}/api/v1/alerts");
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for round in 0..rounds {
            let alerts: Vec<Value> = (0..groups)
                .map(|g| native_alert(&format!("{prefix}{g}"), round, "warning"))
                .collect();
            let deadline = Instant::now() + patience;
            loop {
                match client.post(&url).json(&alerts).send().await {
                    Ok(r) if r.status().is_success() => break,
                    _ => assert!(Instant::now() < deadline, "round {round} never accepted"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}
