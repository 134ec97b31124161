//! The durability promise against the real binary: every alert answered
//! with 2xx survives a SIGKILL, and a pending escalation step fires exactly
//! once across the crash.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{paging_config, Service, WebhookReceiver};
use serde_json::{json, Value};

fn config(hook: &str) -> String {
    paging_config(hook, "4s")
}

fn alert(name: &str, instance: usize, severity: &str) -> Value {
    json!({
        "status": "firing",
        "severity": severity,
        "labels": { "alertname": name, "instance": format!("i{instance}") },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_alerts_survive_sigkill_and_a_pending_step_fires_once() {
    let receiver = WebhookReceiver::start(vec![]).await;
    let mut service = Service::start(&config(&receiver.url)).await;

    let response = service
        .post_json("/api/v1/alerts", &alert("DatabaseDown", 0, "critical"))
        .await;
    assert_eq!(response.status(), 200);
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "step 1 fires as soon as the incident opens");

    // Distinct and repeated fingerprints over 100 groups; count what got a 2xx.
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    for batch in 0..40 {
        let alerts: Vec<Value> = (0..25)
            .map(|i| {
                alert(
                    &format!("group-{}", (batch * 25 + i) % 100),
                    i % 3,
                    "warning",
                )
            })
            .collect();
        let response = service
            .post_json("/api/v1/alerts", &Value::Array(alerts.clone()))
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        for alert in &alerts {
            *acknowledged
                .entry(alert["labels"]["alertname"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }

    service.restart().await; // SIGKILL, then start again on the same data dir

    let incidents = service.all_incidents().await;
    let mut by_group: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for incident in &incidents {
        by_group
            .entry(incident["group_key"].as_str().unwrap().to_string())
            .or_default()
            .push(incident);
    }
    for (name, sent) in &acknowledged {
        let key = format!("root:{{alertname=\"{name}\"}}");
        let group = by_group
            .get(&key)
            .unwrap_or_else(|| panic!("no incident for {key} after restart"));
        assert_eq!(group.len(), 1, "{key} has one incident, not two");
        assert_eq!(
            group[0]["total_alerts"].as_u64(),
            Some(*sent),
            "{key}: every acknowledged alert is counted"
        );
    }

    // Step 2 was pending at the crash: it fires once, counted by key.
    receiver.assert_both_steps_fired_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stores_and_exits_zero_and_restart_restores() {
    let mut service = Service::start("").await;
    let response = service
        .post_json("/api/v1/alerts", &alert("DiskFull", 1, "warning"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(service.terminate(), Some(0), "log:\n{}", service.log_text());
    assert!(service.log_text().contains("stopped"));
    service.restart().await;
    let incidents = service.all_incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["title"], "DiskFull");
}
