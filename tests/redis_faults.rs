//! Crash and outage tests with snapshots in a real Redis: a SIGKILL under
//! load loses no acknowledged alert, and a Redis outage makes the service
//! refuse (503) rather than acknowledge what it cannot store.
//!
//! Needs `redis-server` (installed by `scripts/services.sh up redis`, which
//! `scripts/test.sh` runs). Each test starts its own Redis on a free port,
//! so stopping it does not disturb other tests.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{paging_config, Service, WebhookReceiver};
use serde_json::{json, Value};

fn config(redis: &Redis, hook: &str) -> String {
    let store = format!(
        r#"
[store]
kind = "redis"
redis_url = "{}"
command_timeout = "1s"
"#,
        redis.url()
    );
    store + &paging_config(hook, "6s")
}

/// Alerts acknowledged with a 2xx, per alertname.
type Acknowledged = Arc<Mutex<HashMap<String, u64>>>;

/// Sends batches of 50 alerts (200 groups, fingerprints repeating) every
/// 20 ms until `stop` is set (or 60 s passed, as a bound); counts only
/// what was answered 2xx.
fn load(
    base: String,
    stop: Arc<AtomicBool>,
    acknowledged: Acknowledged,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let stop_at = Instant::now() + Duration::from_secs(60);
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (mut ok, mut refused) = (0u64, 0u64);
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) && Instant::now() < stop_at {
            let batch: Vec<Value> = (0..50)
                .map(|i| {
                    let k = n * 50 + i;
                    json!({"status": "firing", "labels": {"alertname": format!("load-{}", k % 200), "instance": format!("i{}", k % 7)}})
                })
                .collect();
            n += 1;
            let sent = client
                .post(format!("{base}/api/v1/alerts"))
                .json(&batch)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    ok += 1;
                    let mut acked = acknowledged.lock().unwrap();
                    for alert in &batch {
                        *acked
                            .entry(alert["labels"]["alertname"].as_str().unwrap().to_string())
                            .or_default() += 1;
                    }
                }
                _ => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (ok, refused)
    })
}

/// Total alerts per group key, checking no group has two open incidents.
async fn totals(service: &Service) -> BTreeMap<String, u64> {
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut totals = BTreeMap::new();
    for incident in service.all_incidents().await {
        let key = incident["group_key"].as_str().unwrap().to_string();
        if incident["status"] != "resolved" {
            *open.entry(key.clone()).or_default() += 1;
        }
        *totals.entry(key).or_default() += incident["total_alerts"].as_u64().unwrap();
    }
    for (key, count) in open {
        assert!(count <= 1, "{key} has {count} open incidents");
    }
    totals
}

fn assert_all_acknowledged(acknowledged: &Acknowledged, totals: &BTreeMap<String, u64>) {
    for (name, sent) in acknowledged.lock().unwrap().iter() {
        let key = format!("root:{{alertname=\"{name}\"}}");
        let stored = totals.get(&key).copied().unwrap_or(0);
        assert!(
            stored >= *sent,
            "{key}: {sent} alerts acknowledged but only {stored} reflected"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_alert() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let receiver = WebhookReceiver::start(vec![]).await;
    let mut service = Service::start(&config(&redis, &receiver.url)).await;

    let page = json!({"status": "firing", "severity": "critical", "labels": {"alertname": "DatabaseDown"}});
    assert_eq!(
        service.post_json("/api/v1/alerts", &page).await.status(),
        200
    );
    assert_eq!(
        receiver.wait_for(1, Duration::from_secs(10)).await.len(),
        1,
        "step 1 fires at once"
    );

    let acknowledged: Acknowledged = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let generator = load(service.base.clone(), stop.clone(), acknowledged.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = totals(&service).await;
    service.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.restart().await;
    // Load goes on against the restarted service for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, _) = generator.await.unwrap();
    assert!(ok > 20, "the generator got only {ok} batches through");

    let after = totals(&service).await;
    for (key, total) in &before {
        assert!(
            after.get(key).copied().unwrap_or(0) >= *total,
            "{key} went backwards"
        );
    }
    assert_all_acknowledged(&acknowledged, &after);

    // Step 2 was pending at the crash (due 6 s after step 1): once, by key.
    receiver.assert_both_steps_fired_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_refuses_instead_of_acknowledging_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path());
    let receiver = WebhookReceiver::start(vec![]).await;
    let mut service = Service::start(&config(&redis, &receiver.url)).await;

    let acknowledged: Acknowledged = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let generator = load(service.base.clone(), stop.clone(), acknowledged.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.stop();

    // During the outage: still running, not ready, and saying why.
    let mut reason = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reason.is_empty() && Instant::now() < deadline {
        let r = service
            .client
            .get(format!("{}/readyz", service.base))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            let body: Value = r.json().await.unwrap();
            reason = body["reason"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reason.contains("cannot store snapshots"),
        "readyz reason: {reason:?}"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    redis.spawn();

    let deadline = Instant::now() + Duration::from_secs(20);
    while service
        .client
        .get(format!("{}/readyz", service.base))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "not ready again after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Load goes on once Redis is back; then stop and check the counts.
    let acknowledged_before_recovery = acknowledged.lock().unwrap().values().sum::<u64>();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, refused) = generator.await.unwrap();
    assert!(
        refused > 0,
        "alerts sent during the outage were refused, not acknowledged"
    );
    assert!(ok > 0);
    assert!(
        acknowledged.lock().unwrap().values().sum::<u64>() > acknowledged_before_recovery,
        "alerts are acknowledged again once Redis is back"
    );
    // What was acknowledged is in Redis: a restart from it still has it.
    service.restart().await;
    let after = totals(&service).await;
    assert_all_acknowledged(&acknowledged, &after);
}
