//! Webhook subscriptions against the real binary: the filter is respected,
//! every body is signed, 5xx answers are retried, an event that never gets
//! through is dead-lettered after `max_attempts`, deleting stops delivery,
//! and subscriptions survive a restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Received, Service, WebhookReceiver};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "s3cret";

/// Tiny backoffs so retries take milliseconds.
const CONFIG: &str = r#"
[subscriptions]
max_attempts = 3
initial_backoff = "20ms"
max_backoff = "50ms"
timeout = "2s"
"#;

/// Checks `X-Incidentd-Signature` the way a receiver would: HMAC-SHA256 of
/// the raw body with the shared secret, compared in constant time.
fn assert_signed(request: &Received) {
    let header = request.headers["x-incidentd-signature"].to_str().unwrap();
    let hex_mac = header.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    mac.verify_slice(&hex::decode(hex_mac).unwrap())
        .expect("the signature verifies");
}

fn body(request: &Received) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

/// Attempts per event id, from the `ce-id` header.
fn attempts_per_event(received: &[Received]) -> BTreeMap<String, usize> {
    let mut attempts = BTreeMap::new();
    for request in received {
        let id = request.headers["ce-id"].to_str().unwrap().to_string();
        *attempts.entry(id).or_insert(0) += 1;
    }
    attempts
}

async fn alert(service: &Service, name: &str, severity: &str) {
    let alert =
        json!({ "status": "firing", "severity": severity, "labels": { "alertname": name } });
    let response = service.post_json("/api/v1/alerts", &alert).await;
    assert_eq!(response.status(), 200);
}

async fn subscribe(service: &Service, body: Value) -> String {
    let response = service.post_json("/api/v1/subscriptions", &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert!(created.get("secret").is_none(), "the secret is never shown");
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_signed_retried_kept_across_a_restart_and_stopped_by_delete() {
    // The first event's first two attempts get 500.
    let receiver = WebhookReceiver::start(vec![500, 500]).await;
    let mut service = Service::start(CONFIG).await;
    let id = subscribe(
        &service,
        json!({
            "url": receiver.url,
            "secret": SECRET,
            "filter": { "severities": ["critical"], "types": ["created"] },
            "description": "pager bridge",
        }),
    )
    .await;

    alert(&service, "DiskFull", "critical").await;
    alert(&service, "CpuHot", "warning").await;
    alert(&service, "QueueSlow", "info").await;
    alert(&service, "ApiDown", "critical").await;

    receiver.wait_for(4, Duration::from_secs(10)).await;
    // Long enough for a fifth request to show up, were there one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        4,
        "two critical incidents: 3 attempts (500, 500, 200) at the first, 1 at the second"
    );
    let attempts = attempts_per_event(&received);
    let mut counts: Vec<usize> = attempts.values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![1, 3], "{attempts:?}");
    let mut titles = Vec::new();
    for request in &received {
        assert_signed(request);
        let event = body(request);
        let ce_id = request.headers["ce-id"].to_str().unwrap();
        assert_eq!(event["id"], ce_id);
        assert_eq!(request.headers["idempotency-key"], ce_id);
        assert_eq!(
            request.headers["content-type"],
            "application/cloudevents+json"
        );
        assert_eq!(event["type"], "incidentd.incident.created.v1");
        assert_eq!(event["data"]["incident"]["severity"], "critical");
        // The same id as on SSE and the event topics: incident id + seq.
        assert_eq!(
            event["id"],
            format!("{}-1", event["subject"].as_str().unwrap())
        );
        titles.push(
            event["data"]["incident"]["title"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    titles.sort();
    titles.dedup();
    assert_eq!(titles, vec!["ApiDown", "DiskFull"]);
    let deliveries = service
        .get_json(&format!("/api/v1/subscriptions/{id}/deliveries"))
        .await;
    assert_eq!(
        deliveries["counts"],
        json!({ "delivered": 2, "retried": 2, "dead_lettered": 0, "dropped_queue_full": 0 })
    );
    assert_eq!(deliveries["dead_letters"], json!([]));

    // Same data dir: the subscription is still there and still delivers.
    service.restart().await;
    let listed = service.get_json("/api/v1/subscriptions").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["has_secret"], true);
    assert_eq!(listed[0]["description"], "pager bridge");
    alert(&service, "DbDown", "critical").await;
    let received = receiver.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 5, "delivered after the restart");
    assert_signed(&received[4]);
    assert_eq!(body(&received[4])["data"]["incident"]["title"], "DbDown");

    let response = service.delete(&format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(response.status(), 204);
    alert(&service, "CacheDown", "critical").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 5, "nothing after the delete");
    assert_eq!(
        service.get_json("/api/v1/subscriptions").await,
        json!([]),
        "deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_never_get_through_are_dead_lettered_after_max_attempts() {
    let receiver = WebhookReceiver::start(vec![500; 1000]).await;
    let service = Service::start(CONFIG).await;
    let id = subscribe(
        &service,
        json!({ "url": receiver.url, "secret": SECRET, "filter": { "types": ["created"] } }),
    )
    .await;
    alert(&service, "DiskFull", "critical").await;
    alert(&service, "CpuHot", "warning").await;

    let path = format!("/api/v1/subscriptions/{id}/deliveries");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let deliveries = service.get_json(&path).await;
        if deliveries["dead_letters"].as_array().unwrap().len() == 2
            || std::time::Instant::now() > deadline
        {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let letters = deliveries["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{deliveries}");
    for letter in letters {
        assert_eq!(letter["attempts"], 3);
        assert_eq!(letter["last_status"], 500);
        assert_eq!(letter["type"], "created");
        assert_eq!(letter["last_error"], "receiver answered 500");
        assert!(letter["failed_at"].as_str().unwrap().ends_with('Z'));
        let event_id = letter["event_id"].as_str().unwrap();
        assert_eq!(
            event_id,
            format!("{}-1", letter["incident_id"].as_str().unwrap())
        );
    }
    assert_eq!(
        deliveries["counts"],
        json!({ "delivered": 0, "retried": 4, "dead_lettered": 2, "dropped_queue_full": 0 })
    );
    let attempts = attempts_per_event(&receiver.received());
    assert_eq!(attempts.len(), 2);
    assert!(attempts.values().all(|n| *n == 3), "{attempts:?}");
    receiver.received().iter().for_each(assert_signed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_redis_store_subscriptions_persist_in_redis() {
    let redis = std::env::var("INCIDENTD_TEST_REDIS_URL").expect(
        "INCIDENTD_TEST_REDIS_URL is not set: run scripts/test.sh, or scripts/services.sh up redis and export it",
    );
    let config = format!(
        "{CONFIG}\n[store]\nkind = \"redis\"\nredis_url = \"{redis}\"\nkey_prefix = \"incidentd-subscriptions-{}\"\n",
        ulid::Ulid::new()
    );
    let receiver = WebhookReceiver::start(Vec::new()).await;
    let mut service = Service::start(&config).await;
    let id = subscribe(&service, json!({ "url": receiver.url, "secret": SECRET })).await;

    // The data dir holds nothing of it: a restart reads it back from Redis.
    service.restart().await;
    let listed = service.get_json("/api/v1/subscriptions").await;
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    alert(&service, "DiskFull", "critical").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(!received.is_empty(), "delivered after the restart");
    assert_signed(&received[0]);
    assert_eq!(body(&received[0])["type"], "incidentd.incident.created.v1");

    let response = service.delete(&format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(response.status(), 204);
}
