//! Alerts consumed from Apache Pulsar topics, against the real broker that
//! `scripts/services.sh up pulsar` starts (`scripts/test.sh` does), named
//! by INCIDENTD_TEST_PULSAR_URL.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::load::{native_alert, pagerduty_event};
use common::pulsar::{client, produce, producer, pulsar_url, subscribe};
use common::redis::Redis;
use common::{wait_until, Service};
use futures::StreamExt;
use pulsar::consumer::Message;
use pulsar::{Consumer, Producer, SubType, TokioExecutor};
use serde_json::{json, Value};

fn webhook(alertname: &str, instances: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "status": "firing",
        "receiver": "incidentd",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": instances.iter().map(|i| json!({
            "status": "firing",
            "labels": {"alertname": alertname, "instance": i},
            "annotations": {},
            "startsAt": "2026-11-27T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": format!("{alertname}-{i}"),
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Per alertname, `what` of its incident.
async fn by_alertname<T>(service: &Service, what: impl Fn(&Value) -> T) -> BTreeMap<String, T> {
    service
        .all_incidents()
        .await
        .iter()
        .map(|i| {
            let alertname = i["labels"]["alertname"].as_str().expect("alertname label");
            (alertname.to_string(), what(i))
        })
        .collect()
}

/// Per alertname: (alert_count, total_alerts, seq) of its incident.
async fn incidents(service: &Service) -> BTreeMap<String, (u64, u64, u64)> {
    by_alertname(service, |i| {
        (
            i["alert_count"].as_u64().expect("alert_count"),
            i["total_alerts"].as_u64().expect("total_alerts"),
            i["seq"].as_u64().expect("seq"),
        )
    })
    .await
}

/// Per alertname: its incident's id.
async fn incident_ids(service: &Service) -> BTreeMap<String, String> {
    by_alertname(service, |i| i["id"].as_str().expect("id").to_string()).await
}

/// Waits until the incidents have exactly these alert counts.
async fn wait_for_alert_counts(service: &Service, expected: &BTreeMap<&str, u64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: BTreeMap<String, u64> = incidents(service)
            .await
            .into_iter()
            .map(|(name, (alerts, _, _))| (name, alerts))
            .collect();
        let wanted: BTreeMap<String, u64> =
            expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        if seen == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "incidents {seen:?}, expected {wanted:?}; log:\n{}",
            service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn next_dead_letter(
    service: &Service,
    dead: &mut Consumer<Vec<u8>, TokioExecutor>,
) -> Message<Vec<u8>> {
    let message = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .unwrap_or_else(|_| panic!("no dead letter within 30 s; log:\n{}", service.log_text()))
        .expect("dead-letter stream open")
        .expect("dead letter");
    dead.ack(&message).await.expect("ack");
    message
}

fn property(message: &Message<Vec<u8>>, key: &str) -> String {
    message
        .metadata()
        .properties
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("property {key} on the dead letter"))
        .value
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_pulsar_topics_become_incidents_and_poison_is_dead_lettered() {
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let native_topic = format!("persistent://public/default/alerts-native-{run}");
    let webhook_topic = format!("persistent://public/default/alerts-webhook-{run}");
    let dead_topic = format!("persistent://public/default/alerts-dead-{run}");
    let subscription = format!("incidentd-{run}");
    let client = client().await;

    // Pulsar keeps messages only for existing subscriptions: the dead-letter
    // checker's, and the service's own, created here and left for it.
    let mut dead = subscribe(&client, &dead_topic, "check", SubType::Exclusive).await;
    for topic in [&native_topic, &webhook_topic] {
        let mut consumer = subscribe(&client, topic, &subscription, SubType::KeyShared).await;
        consumer.close().await.expect("close");
    }
    let config = format!(
        r#"
[engine]
shards = 4
[routing]
group_by = ["alertname"]
[pulsar]
url = "{url}"
subscription = "{subscription}"
dead_letter_topic = "{dead_topic}"
[[pulsar.sources]]
topic = "{native_topic}"
format = "native"
[[pulsar.sources]]
topic = "{webhook_topic}"
format = "alertmanager_webhook"
"#,
        url = pulsar_url()
    );
    let mut service = Service::start(&config).await;
    let mut natives = producer(&client, &native_topic).await;
    let mut webhooks = producer(&client, &webhook_topic).await;

    produce(
        &mut natives,
        serde_json::to_vec(&native_alert("NativeOne", 1, "warning")).unwrap(),
    )
    .await;
    produce(
        &mut natives,
        serde_json::to_vec(&json!([
            native_alert("NativeTwo", 1, "warning"),
            native_alert("NativeTwo", 2, "warning")
        ]))
        .unwrap(),
    )
    .await;
    produce(&mut natives, b"{not json".to_vec()).await;
    // Partly valid: the good line is taken, the message still dead-lettered.
    let mixed = format!(
        "{}\n{}\n",
        native_alert("NativeMixed", 1, "warning"),
        json!({"labels": {"alertname": "NativeMixed"}})
    );
    produce(&mut natives, mixed.into_bytes()).await;
    produce(
        &mut natives,
        serde_json::to_vec(&native_alert("NativeAfterPoison", 1, "warning")).unwrap(),
    )
    .await;
    produce(&mut webhooks, webhook("Webhook", &["w1", "w2", "w3"])).await;

    let mut expected = BTreeMap::from([
        ("NativeOne", 1),
        ("NativeTwo", 2),
        ("NativeMixed", 1),
        ("NativeAfterPoison", 1),
        ("Webhook", 3),
    ]);
    wait_for_alert_counts(&service, &expected).await;

    let poison = next_dead_letter(&service, &mut dead).await;
    assert_eq!(poison.payload.data, b"{not json");
    assert!(
        property(&poison, "incidentd-reason").contains("malformed JSON"),
        "{}",
        property(&poison, "incidentd-reason")
    );
    assert_eq!(property(&poison, "incidentd-source-topic"), native_topic);
    assert!(!property(&poison, "incidentd-source-message-id").is_empty());
    let partly = next_dead_letter(&service, &mut dead).await;
    assert!(
        property(&partly, "incidentd-reason").contains("1 invalid alert(s) not taken (1 taken)"),
        "{}",
        property(&partly, "incidentd-reason")
    );

    // Acknowledged messages are not redelivered after a restart: nothing
    // is applied twice. A message produced while it is down is taken.
    let before = incidents(&service).await;
    assert_eq!(service.terminate(), Some(0), "a clean stop");
    produce(&mut webhooks, webhook("WhileDown", &["d1", "d2"])).await;
    service.restart().await;
    expected.insert("WhileDown", 2);
    wait_for_alert_counts(&service, &expected).await;
    // Time for a redelivery, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut after = incidents(&service).await;
    after.remove("WhileDown");
    assert_eq!(after, before, "restored, and no message applied twice");
    let no_more = tokio::time::timeout(Duration::from_secs(1), dead.next()).await;
    assert!(no_more.is_err(), "no further dead letters");
}

/// The `incidentd_pulsar_messages_total` count of `outcome` on `topic`.
async fn messages_counted(service: &Service, topic: &str, outcome: &str) -> u64 {
    let topic = format!("topic=\"{topic}\"");
    let outcome = format!("outcome=\"{outcome}\"");
    service
        .metric("incidentd_pulsar_messages_total{", &[&topic, &outcome])
        .await as u64
}

/// A service whose snapshots live in a Redis of its own, consuming one
/// topic of `format`; for outages.
struct Outage {
    service: Service,
    redis: Redis,
    topic: String,
    alerts: Producer<TokioExecutor>,
    dead: Consumer<Vec<u8>, TokioExecutor>,
    _dir: tempfile::TempDir,
}

impl Outage {
    async fn start(subscription_type: &str, format: &str) -> Outage {
        let run = ulid::Ulid::new().to_string().to_lowercase();
        let topic = format!("persistent://public/default/alerts-outage-{run}");
        let dead_topic = format!("persistent://public/default/alerts-outage-dead-{run}");
        let subscription = format!("incidentd-{run}");
        let sub_type = match subscription_type {
            "failover" => SubType::Failover,
            _ => SubType::KeyShared,
        };
        let client = client().await;
        let dead = subscribe(&client, &dead_topic, "check", SubType::Exclusive).await;
        let mut consumer = subscribe(&client, &topic, &subscription, sub_type).await;
        consumer.close().await.expect("close");
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path());
        let config = format!(
            r#"
[engine]
shards = 2
[store]
kind = "redis"
redis_url = "{redis}"
command_timeout = "300ms"
key_prefix = "pulsar-{run}"
[routing]
group_by = ["alertname"]
[pulsar]
url = "{url}"
subscription = "{subscription}"
subscription_type = "{subscription_type}"
dead_letter_topic = "{dead_topic}"
max_redeliveries = 3
redelivery_delay = "300ms"
[[pulsar.sources]]
topic = "{topic}"
format = "{format}"
"#,
            redis = redis.url(),
            url = pulsar_url()
        );
        let service = Service::start(&config).await;
        let alerts = producer(&client, &topic).await;
        Outage {
            service,
            redis,
            topic,
            alerts,
            dead,
            _dir: dir,
        }
    }

    async fn send(&mut self, alertname: &str) {
        let alert = serde_json::to_vec(&native_alert(alertname, 1, "warning")).unwrap();
        produce(&mut self.alerts, alert).await;
    }

    async fn send_pagerduty(&mut self, action: &str, dedup_key: &str) {
        produce(&mut self.alerts, pagerduty_event(action, dedup_key)).await;
    }

    /// Waits until the source has negatively acknowledged `count` messages
    /// (held and redelivered them).
    async fn wait_for_nacks(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while messages_counted(&self.service, &self.topic, "nacked").await < count {
            assert!(
                Instant::now() < deadline,
                "not {count} redeliveries within 30 s; log:\n{}",
                self.service.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_incident(&self, alertname: &str) {
        let what = format!("an incident for {alertname}");
        wait_until(&what, Duration::from_secs(60), &[&self.service], || async {
            // Just after Redis came back, listing may answer 503 a while.
            let all = self.service.try_all_incidents().await?;
            if all.iter().any(|i| i["labels"]["alertname"] == alertname) {
                Ok(())
            } else {
                Err(format!("{} incidents, none for {alertname}", all.len()))
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_shared_alerts_that_cannot_be_stored_are_redelivered_then_dead_lettered() {
    let mut outage = Outage::start("key_shared", "native").await;
    // The store is down: the batch is negatively acknowledged and
    // redelivered until the broker's count reaches max_redeliveries, then
    // the client moves it to the dead-letter topic.
    outage.redis.stop();
    outage.send("DuringOutage").await;
    let exhausted = next_dead_letter(&outage.service, &mut outage.dead).await;
    assert_eq!(
        exhausted.payload.data,
        serde_json::to_vec(&native_alert("DuringOutage", 1, "warning")).unwrap()
    );
    assert_eq!(property(&exhausted, "REAL_TOPIC"), outage.topic);
    assert!(
        messages_counted(&outage.service, &outage.topic, "nacked").await >= 2,
        "redelivered before it was dead-lettered"
    );

    // Once the store is back, alerts are taken again.
    outage.redis.spawn();
    outage.send("AfterOutage").await;
    outage.wait_for_incident("AfterOutage").await;
    assert!(messages_counted(&outage.service, &outage.topic, "taken").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_alerts_are_retried_until_the_store_is_back() {
    let mut outage = Outage::start("failover", "native").await;
    outage.redis.stop();
    outage.send("DuringOutage").await;
    outage.send("AlsoDuringOutage").await;
    // Each attempt nacks one or both; 8 is past max_redeliveries (3).
    outage.wait_for_nacks(8).await;
    // Yet nothing was dead-lettered: failover retries until stored.
    outage.redis.spawn();
    outage.wait_for_incident("DuringOutage").await;
    outage.wait_for_incident("AlsoDuringOutage").await;
    let no_letter = tokio::time::timeout(Duration::from_secs(1), outage.dead.next()).await;
    assert!(no_letter.is_err(), "nothing dead-lettered on failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_resolve_whose_key_the_store_cannot_look_up_waits_for_the_store() {
    let mut outage = Outage::start("failover", "pagerduty").await;
    outage.send_pagerduty("trigger", "disk-db1").await;
    outage.wait_for_incident("disk-db1").await;
    // After a restart the trigger's key is only in the store, which is down.
    outage.service.restart().await;
    outage.redis.stop();
    outage.send_pagerduty("resolve", "disk-db1").await;
    outage.wait_for_nacks(2).await;
    // Held, not dead-lettered: once the store answers, the resolve applies.
    outage.redis.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let incidents = outage.service.try_all_incidents().await;
        // The resolve resolves the trigger's alert (the incident follows
        // after its auto-resolve grace).
        let resolved = incidents
            .as_ref()
            .is_ok_and(|all| all.len() == 1 && all[0]["firing_alerts"] == 0);
        if resolved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert did not resolve: {incidents:?}; log:\n{}",
            outage.service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let no_letter = tokio::time::timeout(Duration::from_secs(1), outage.dead.next()).await;
    assert!(no_letter.is_err(), "nothing dead-lettered");
}

/// A standalone replica that dies after its incidents' events went out but
/// before it stored them gets the messages again and must open the same
/// incidents, not new ones. A second subscription of a replica with an
/// empty store reads the same messages as that redelivery would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_read_again_open_their_incidents_under_the_same_ids() {
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let topic = format!("persistent://public/default/alerts-again-{run}");
    let dead_topic = format!("persistent://public/default/alerts-again-dead-{run}");
    let client = client().await;
    let subscriptions = [format!("first-{run}"), format!("second-{run}")];
    // Both subscriptions exist before anything is produced, so both get it all.
    for subscription in &subscriptions {
        let mut consumer = subscribe(&client, &topic, subscription, SubType::Failover).await;
        consumer.close().await.expect("close");
    }
    let config = |subscription: &str| {
        format!(
            r#"
[engine]
shards = 2
[routing]
group_by = ["alertname"]
[pulsar]
url = "{url}"
subscription = "{subscription}"
subscription_type = "failover"
dead_letter_topic = "{dead_topic}"
[[pulsar.sources]]
topic = "{topic}"
format = "native"
"#,
            url = pulsar_url()
        )
    };
    let mut alerts = producer(&client, &topic).await;
    produce(
        &mut alerts,
        serde_json::to_vec(&native_alert("Again1", 1, "warning")).unwrap(),
    )
    .await;
    produce(
        &mut alerts,
        serde_json::to_vec(&json!([
            native_alert("Again2", 1, "warning"),
            native_alert("Again3", 1, "warning"),
            native_alert("Again2", 2, "warning"),
        ]))
        .unwrap(),
    )
    .await;
    let expected = BTreeMap::from([("Again1", 1), ("Again2", 2), ("Again3", 1)]);

    let mut first = Service::start(&config(&subscriptions[0])).await;
    wait_for_alert_counts(&first, &expected).await;
    let opened = incident_ids(&first).await;
    first.kill();

    let second = Service::start(&config(&subscriptions[1])).await;
    wait_for_alert_counts(&second, &expected).await;
    let again = incident_ids(&second).await;
    assert_eq!(again, opened, "the same messages open the same incidents");
    let distinct: std::collections::BTreeSet<_> = opened.values().collect();
    assert_eq!(distinct.len(), 3, "each group has its own id: {opened:?}");
}
