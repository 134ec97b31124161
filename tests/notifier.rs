//! Escalation notifications reach a webhook signed, with an idempotency
//! key, and are retried after 5xx answers.

mod common;

use std::time::Duration;

use common::{Service, WebhookReceiver};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_keyed_and_retried() {
    let receiver = WebhookReceiver::start(vec![500, 503]).await;
    let config = format!(
        r#"
[routing]
policies = {{ critical = "page" }}

[[escalation_policies]]
id = "page"
[[escalation_policies.steps]]
escalate_after = "1h"
targets = ["user:alice", "team:db"]
channels = ["hook", "log"]

[[notifier.webhooks]]
name = "hook"
url = "{}"
secret = "s3cret"
initial_backoff = "20ms"
"#,
        receiver.url
    );
    let service = Service::start(&config).await;
    let alert =
        json!({ "status": "firing", "severity": "critical", "labels": { "alertname": "ApiDown" } });
    assert_eq!(
        service.post_json("/api/v1/alerts", &alert).await.status(),
        200
    );

    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "two 5xx answers, then a success");
    let key = got[0].headers["idempotency-key"].to_str().unwrap();
    for attempt in &got {
        assert_eq!(
            attempt.headers["idempotency-key"].to_str().unwrap(),
            key,
            "retries keep the key"
        );
        let signature = attempt.headers["x-incidentd-signature"].to_str().unwrap();
        assert_eq!(
            signature,
            incidentd::webhook::signature("s3cret", &attempt.body)
        );
    }
    let body: Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["targets"], json!(["user:alice", "team:db"]));
    assert_eq!(body["step"], 0);
    assert_eq!(body["incident"]["title"], "ApiDown");
    assert!(key.starts_with(body["incident"]["id"].as_str().unwrap()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "no delivery after the success"
    );
}
