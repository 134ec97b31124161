//! Cluster mode against a real Kafka and Redis: alerts from topics in
//! several formats become incidents, poison messages are dead-lettered,
//! and a replica's death or return moves its shards without losing or
//! doubling anything.
//!
//! Needs the Kafka and Redis that `scripts/services.sh up kafka redis`
//! starts (`scripts/test.sh` does), named by INCIDENTD_TEST_KAFKA_BROKERS and
//! INCIDENTD_TEST_REDIS_URL. Every test uses topics, a group and a Redis key
//! prefix of its own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::kafka::{brokers, create_topics, reader, Names};
use common::load::{native_alert, pagerduty_event};
use common::redis::Redis;
use common::{paging_config, wait_until, Service, WebhookReceiver};
use pulsar::SubType;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

const SHARDS: i32 = 8;

fn redis_url() -> String {
    std::env::var("INCIDENTD_TEST_REDIS_URL").expect(
        "INCIDENTD_TEST_REDIS_URL is not set: run scripts/test.sh, or scripts/services.sh up redis and export INCIDENTD_TEST_REDIS_URL=redis://127.0.0.1:6390",
    )
}

/// Creates a cluster's topics for `names`: the source `source`, the keyed
/// topic and the dead-letter topic; returns the source's full name.
async fn cluster_topics(names: &Names, source: &str) -> String {
    let (source, keyed, dead) = (
        names.topic(source),
        names.topic("keyed"),
        names.topic("dead"),
    );
    create_topics(&[(&source, SHARDS), (&keyed, SHARDS), (&dead, 1)]).await;
    source
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .create()
        .expect("kafka producer")
}

async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
}

/// A replica's config: the keyed topic, dead letters and sources of `names`;
/// `engine` adds lines to `[engine]`, `extra` tables at the end.
fn cluster_config(names: &Names, engine: &str, sources: &str, extra: &str) -> String {
    format!(
        r#"
[engine]
shards = {SHARDS}
{engine}
[engine.passivation]
enabled = true

[store]
kind = "redis"
redis_url = "{redis}"
key_prefix = "{run}"
command_timeout = "5s"

[kafka]
brokers = "{brokers}"
group_id = "{run}"
keyed_topic = "{keyed}"
dead_letter_topic = "{dead}"
session_timeout = "6s"
handover_timeout = "15s"
{sources}
{extra}
"#,
        redis = redis_url(),
        run = names.run,
        brokers = brokers(),
        keyed = names.topic("keyed"),
        dead = names.topic("dead"),
    )
}

/// One replica reading `sources`, with incidents grouped by alertname.
async fn one_replica_by_alertname(names: &Names, sources: &str) -> Service {
    Service::start(&cluster_config(
        names,
        "",
        sources,
        "[routing]\ngroup_by = [\"alertname\"]\n",
    ))
    .await
}

/// Starts two replicas of `config` and waits until they share the shards.
async fn two_replicas(config: &str) -> (Service, Service) {
    let a = Service::start(config).await;
    let b = Service::start(config).await;
    wait_for_shared_shards(
        "both replicas share the 8 shards",
        Duration::from_secs(60),
        &a,
        &b,
    )
    .await;
    (a, b)
}

/// Waits until both replicas own shards and together own all of them.
async fn wait_for_shared_shards(what: &str, within: Duration, a: &Service, b: &Service) {
    wait_until(what, within, &[a, b], || async {
        let (on_a, on_b) = (owned_shards(a).await, owned_shards(b).await);
        if on_a > 0 && on_b > 0 && on_a + on_b == SHARDS as usize {
            Ok(())
        } else {
            Err(format!("a owns {on_a}, b owns {on_b}"))
        }
    })
    .await;
}

/// How many shards a replica owns now.
async fn owned_shards(service: &Service) -> usize {
    service.metric("incidentd_kafka_owned_shards", &[]).await as usize
}

/// Waits until `service` counted `at_least` consumed messages of `outcome`.
async fn wait_for_messages(service: &Service, outcome: &str, at_least: f64) {
    let label = format!("outcome=\"{outcome}\"");
    wait_until(
        &format!("{at_least} messages {outcome}"),
        Duration::from_secs(60),
        &[service],
        || async {
            let seen = service
                .metric("incidentd_kafka_messages_total", &[&label])
                .await;
            if seen >= at_least {
                Ok(())
            } else {
                Err(format!("{seen} {outcome}"))
            }
        },
    )
    .await;
}

/// Waits until `service` lists `groups` incidents of `alerts` alerts each.
async fn wait_for_groups(service: &Service, groups: usize, alerts: u64) {
    wait_until(
        &format!("{groups} incidents of {alerts} alerts"),
        Duration::from_secs(60),
        &[service],
        || async {
            let seen = alerts_by_group(service).await?;
            if seen.len() == groups && seen.values().all(|c| *c == alerts) {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await;
}

/// Alert count per group key of the incidents `service` lists.
async fn alerts_by_group(service: &Service) -> Result<BTreeMap<String, u64>, String> {
    Ok(service
        .try_all_incidents()
        .await?
        .iter()
        .map(|i| {
            (
                i["group_key"].as_str().expect("group_key").to_string(),
                i["alert_count"].as_u64().expect("alert_count"),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_in_mixed_formats_become_incidents_and_poison_is_dead_lettered() {
    let names = Names::new("ingest");
    let native = cluster_topics(&names, "native").await;
    let (webhook, dead) = (names.topic("webhook"), names.topic("dead"));
    create_topics(&[(&webhook, SHARDS)]).await;
    let sources = format!(
        r#"
[[kafka.sources]]
topic = "{native}"
format = "native"
[[kafka.sources]]
topic = "{webhook}"
format = "alertmanager_webhook"
"#
    );
    let service = one_replica_by_alertname(&names, &sources).await;

    // 100,000 alerts: 500 groups per format, 100 distinct alerts each, sent
    // 50 to a message; and 50 poison messages per topic.
    let producer = producer();
    let per_message = 50;
    let mut sends = Vec::new();
    for message in 0..1_000 {
        let group = message % 500;
        let first = (message / 500) * per_message;
        let alerts: Vec<Value> = (first..first + per_message)
            .map(|i| native_alert(&format!("N{group}"), i, "warning"))
            .collect();
        sends.push((
            native.clone(),
            format!("n{message}"),
            serde_json::to_vec(&alerts).unwrap(),
        ));
        let payload = json!({
            "version": "4",
            "groupKey": format!("{{}}:{{alertname=\"W{group}\"}}"),
            "status": "firing",
            "receiver": "incidentd",
            "groupLabels": {"alertname": format!("W{group}")},
            "commonLabels": {"alertname": format!("W{group}")},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": (first..first + per_message).map(|i| json!({
                "status": "firing",
                "labels": {"alertname": format!("W{group}"), "instance": format!("i{i}")},
                "annotations": {},
                "startsAt": "2026-11-27T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": format!("w{group}-{i}"),
            })).collect::<Vec<_>>(),
        });
        sends.push((
            webhook.clone(),
            format!("w{message}"),
            serde_json::to_vec(&payload).unwrap(),
        ));
    }
    for poison in 0..50 {
        sends.push((native.clone(), format!("p{poison}"), b"{not json".to_vec()));
        sends.push((
            webhook.clone(),
            format!("q{poison}"),
            br#"{"version":"4","alerts":[{"labels":{}}]}"#.to_vec(),
        ));
    }
    for chunk in sends.chunks(500) {
        let batch = chunk
            .iter()
            .map(|(topic, key, payload)| produce(&producer, topic, key, payload));
        futures::future::join_all(batch).await;
    }

    wait_until(
        "all 1,000 incidents with 100 alerts each",
        Duration::from_secs(120),
        &[&service],
        || async {
            let groups = alerts_by_group(&service).await?;
            let complete = groups.values().filter(|count| **count == 100).count();
            if groups.len() == 1_000 && complete == 1_000 {
                Ok(())
            } else {
                Err(format!("{} incidents, {complete} complete", groups.len()))
            }
        },
    )
    .await;
    let groups = alerts_by_group(&service).await.expect("incidents listed");
    for group in 0..500 {
        for prefix in ["N", "W"] {
            let key = format!("alertname=\"{prefix}{group}\"");
            assert!(
                groups.keys().any(|k| k.contains(&key)),
                "an incident for {key}"
            );
        }
    }

    // The dead letters: 100, each saying why and where from.
    let consumer = reader(&names, &dead);
    let mut reasons = BTreeMap::<String, usize>::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reasons.values().sum::<usize>() < 100 && Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            continue;
        };
        let headers = message.headers().expect("dead letters carry headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap_or_else(|| panic!("header {name} missing"))
        };
        let topic = header("incidentd-source-topic");
        assert!(topic == native || topic == webhook, "source topic {topic}");
        header("incidentd-source-partition")
            .parse::<i32>()
            .expect("partition");
        header("incidentd-source-offset")
            .parse::<i64>()
            .expect("offset");
        let reason = header("incidentd-reason");
        let kind = if reason.contains("malformed JSON") {
            "malformed"
        } else if reason.contains("invalid alert") {
            "invalid"
        } else {
            panic!("unexpected reason {reason:?}")
        };
        *reasons.entry(format!("{topic}:{kind}")).or_default() += 1;
    }
    assert_eq!(
        reasons,
        BTreeMap::from([
            (format!("{native}:malformed"), 50),
            (format!("{webhook}:invalid"), 50),
        ])
    );
}

/// GET `path` on `service`: the JSON body and where the service read it
/// (`incidentd-source`: `owner` from its memory, `store` from Redis).
async fn get_with_source(service: &Service, path: &str) -> (Value, String) {
    let response = service.get_ok(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let source = response.headers()["incidentd-source"]
        .to_str()
        .expect("header text")
        .to_string();
    (response.json().await.expect("JSON body"), source)
}

/// An incident `service` owns: it answers GET for those from its memory.
async fn incident_owned_by(service: &Service) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for incident in service.all_incidents().await {
            let id = incident["id"].as_str().expect("id").to_string();
            let (_, source) = get_with_source(service, &format!("/api/v1/incidents/{id}")).await;
            if source == "owner" {
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the replica owns no incident after 60s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_hands_over_without_loss_and_a_rejoin_shares_again() {
    let names = Names::new("failover");
    let alerts = cluster_topics(&names, "alerts").await;
    let receiver = WebhookReceiver::start(Vec::new()).await;
    let sources = format!("[[kafka.sources]]\ntopic = \"{alerts}\"\nformat = \"native\"\n");
    let config = cluster_config(&names, "", &sources, &paging_config(&receiver.url, "4s"));
    let (mut a, b) = two_replicas(&config).await;

    // Load: 200 groups, 10 alerts each, in 4 waves; A dies after the second.
    let producer = producer();
    let groups = 200;
    let mut produced = 0;
    let mut on_a = None;
    for wave in 0..4 {
        let sends = (0..groups).map(|g| {
            let alert = native_alert(&format!("G{g}"), wave * 10 + g % 10, "critical");
            let payload = serde_json::to_vec(&alert).unwrap();
            let producer = &producer;
            let alerts = &alerts;
            async move { produce(producer, alerts, &format!("g{g}"), &payload).await }
        });
        futures::future::join_all(sends).await;
        produced += groups;
        if wave == 1 {
            let id = incident_owned_by(&a).await;
            // B answers for it too, from the snapshot A stored.
            let path = format!("/api/v1/incidents/{id}");
            let (from_a, _) = get_with_source(&a, &path).await;
            let (from_b, source) = get_with_source(&b, &path).await;
            assert_eq!(source, "store");
            assert_eq!(from_b["id"], id.as_str());
            assert_eq!(from_b["group_key"], from_a["group_key"]);
            assert_eq!(from_b["created_at"], from_a["created_at"]);
            let (timeline, source) = get_with_source(&b, &format!("{path}/timeline")).await;
            assert_eq!(source, "store");
            assert!(timeline["total"].as_u64().unwrap() >= 1, "{timeline}");
            on_a = Some(id);
            a.kill();
        }
    }

    wait_until(
        "B owns every shard",
        Duration::from_secs(60),
        &[&b],
        || async {
            let owned = owned_shards(&b).await;
            if owned == 8 {
                Ok(())
            } else {
                Err(format!("b owns {owned}"))
            }
        },
    )
    .await;
    // Every group's incident holds all 4 waves' alerts (4 distinct each).
    wait_until(
        "every alert reflected",
        Duration::from_secs(60),
        &[&a, &b],
        || async {
            let incidents = b.try_all_incidents().await?;
            let short: Vec<String> = incidents
                .iter()
                .filter(|i| i["alert_count"] != 4)
                .map(|i| format!("{}: {}", i["group_key"], i["id"]))
                .collect();
            if incidents.len() == groups && short.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} incidents, short of alerts: {short:?}",
                    incidents.len()
                ))
            }
        },
    )
    .await;
    assert_eq!(produced, groups * 4);
    let incidents = b.all_incidents().await;
    let open_per_group: BTreeSet<&str> = incidents
        .iter()
        .map(|i| i["group_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        open_per_group.len(),
        incidents.len(),
        "no group has two incidents"
    );

    // Both escalation steps fired exactly once per incident.
    // Counted by idempotency key: a redelivery after the takeover repeats one.
    receiver
        .wait_for_steps(groups * 2, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steps = receiver.fired_steps();
    for incident in &incidents {
        let id = incident["id"].as_str().unwrap();
        let mine: Vec<&String> = steps.iter().filter(|k| k.starts_with(id)).collect();
        assert_eq!(
            mine.len(),
            2,
            "incident {id} fired steps {mine:?}; {} keys in all, e.g. {:?}",
            steps.len(),
            steps.iter().take(4).collect::<Vec<_>>()
        );
    }
    assert_eq!(steps.len(), groups * 2, "no step of a vanished incident");

    // A command to the survivor for an incident that lived on A.
    let id = on_a.expect("an incident owned by A");
    let response = b
        .post_json(
            &format!("/api/v1/incidents/{id}/acknowledge"),
            &json!({"actor": "bob"}),
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let incident = b.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "acknowledged");

    // A comes back: the shards are shared again, nothing lost or doubled.
    a.restart().await;
    wait_for_shared_shards(
        "the shards are shared again",
        Duration::from_secs(90),
        &a,
        &b,
    )
    .await;
    let after = alerts_by_group(&a).await.expect("incidents listed");
    assert_eq!(after.len(), groups);
    assert!(after.values().all(|c| *c == 4), "{after:?}");
    let acknowledged = a
        .all_incidents()
        .await
        .iter()
        .filter(|i| i["id"] == id.as_str())
        .all(|i| i["status"] == "acknowledged");
    assert!(acknowledged, "the acknowledgement survived the move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_resolve_whose_key_the_store_cannot_look_up_waits_for_the_store() {
    let names = Names::new("heldkey");
    let events = cluster_topics(&names, "pagerduty").await;
    let sources = format!("[[kafka.sources]]\ntopic = \"{events}\"\nformat = \"pagerduty\"\n");
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path());
    let shared_redis = cluster_config(&names, "", &sources, "");
    let config = shared_redis.replace(&redis_url(), &redis.url());
    assert_ne!(config, shared_redis, "the replica has a Redis of its own");
    let mut service = Service::start(&config).await;
    let producer = producer();
    let event = |action: &str| pagerduty_event(action, "disk-db1");
    produce(&producer, &events, "disk-db1", &event("trigger")).await;
    wait_for_groups(&service, 1, 1).await;

    // After a restart the trigger's key is only in the store, which goes
    // down. (A clean stop commits the trigger's offset: read again, it
    // would put its key back in memory.)
    assert_eq!(service.terminate(), Some(0), "a clean stop");
    service.restart().await;
    wait_until(
        "the restarted replica owns every shard",
        Duration::from_secs(60),
        &[&service],
        || async {
            match owned_shards(&service).await {
                8 => Ok(()),
                owned => Err(format!("owns {owned}")),
            }
        },
    )
    .await;
    redis.stop();
    produce(&producer, &events, "disk-db1", &event("resolve")).await;
    wait_for_messages(&service, "held", 2.0).await;

    // Once the store answers, the resolve is applied; nothing was poison.
    redis.spawn();
    wait_until(
        "the trigger's alert resolves",
        Duration::from_secs(60),
        &[&service],
        || async {
            let incidents = service.try_all_incidents().await?;
            match incidents.as_slice() {
                [one] if one["firing_alerts"] == 0 => Ok(()),
                _ => Err(format!("{incidents:?}")),
            }
        },
    )
    .await;
    let dead_lettered = service
        .metric(
            "incidentd_kafka_messages_total",
            &["outcome=\"dead_lettered\""],
        )
        .await;
    assert_eq!(dead_lettered, 0.0);
}

/// Moves a group's committed offsets back to the start of `topics`, as an
/// operator's reset would (the group must have no live member).
async fn reset_group(group: &str, topics: &[&str]) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("reset consumer");
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        for partition in 0..SHARDS {
            tpl.add_partition_offset(topic, partition, Offset::Offset(0))
                .expect("offset");
        }
    }
    consumer.assign(&tpl).expect("assign");
    consumer
        .commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("resetting the offsets of {group}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_every_topic_from_the_start_changes_nothing() {
    let names = Names::new("replay");
    let alerts = cluster_topics(&names, "alerts").await;
    let sources = format!("[[kafka.sources]]\ntopic = \"{alerts}\"\nformat = \"native\"\n");
    let config = cluster_config(
        &names,
        "",
        &sources,
        "[routing]\ngroup_by = [\"alertname\"]\n",
    );
    let mut service = Service::start(&config).await;
    let producer = producer();
    let sends = (0..2_000).map(|i| {
        let payload =
            serde_json::to_vec(&native_alert(&format!("R{}", i % 100), i, "warning")).unwrap();
        let producer = &producer;
        let alerts = &alerts;
        async move { produce(producer, alerts, &format!("r{i}"), &payload).await }
    });
    futures::future::join_all(sends).await;
    wait_for_groups(&service, 100, 20).await;
    let before = state_of(&service).await;

    assert_eq!(service.terminate(), Some(0), "a clean stop");
    reset_group(&names.run, &[&names.topic("keyed")]).await;
    reset_group(&format!("{}.sources", names.run), &[&alerts]).await;
    service.restart().await;

    // Every alert is read and re-keyed again, and every copy is recognised.
    wait_for_messages(&service, "replayed", 2_000.0).await;
    service.get_json("/readyz").await;
    assert_eq!(
        state_of(&service).await,
        before,
        "no incident changed, no event has a new seq"
    );

    // A replica whose store has nothing (as after a crash before its first
    // flush) replays the topics into the same incidents, under the same ids:
    // what went out about them before the crash is repeated, not orphaned.
    assert_eq!(service.terminate(), Some(0), "a clean stop");
    reset_group(&names.run, &[&names.topic("keyed")]).await;
    reset_group(&format!("{}.sources", names.run), &[&alerts]).await;
    let stored_under = format!("key_prefix = \"{}\"", names.run);
    let empty_store = config.replace(
        &stored_under,
        &format!("key_prefix = \"{}-empty\"", names.run),
    );
    assert_ne!(empty_store, config, "the store prefix was replaced");
    let rebuilt = Service::start(&empty_store).await;
    wait_for_groups(&rebuilt, 100, 20).await;
    assert_eq!(state_of(&rebuilt).await, before);
}

/// Per group: the incident id, its seq (one per event) and alert counters.
async fn state_of(service: &Service) -> BTreeMap<String, (String, u64, u64, u64)> {
    service
        .all_incidents()
        .await
        .iter()
        .map(|i| {
            (
                i["group_key"].as_str().unwrap().to_string(),
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["seq"].as_u64().unwrap(),
                    i["alert_count"].as_u64().unwrap(),
                    i["total_alerts"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_keyed_by_shard_is_read_directly_and_strays_are_rekeyed() {
    let names = Names::new("direct");
    let direct = cluster_topics(&names, "direct").await;
    let sources = format!(
        "[[kafka.sources]]\ntopic = \"{direct}\"\nformat = \"native\"\nkeyed_by_group_key = true\n"
    );
    let service = one_replica_by_alertname(&names, &sources).await;
    // Every group's alerts land on every partition in turn: most are on a
    // partition that is not their shard's and must travel on.
    let producer = producer();
    let sends = (0..400).map(|i| {
        let payload =
            serde_json::to_vec(&native_alert(&format!("D{}", i % 100), i, "warning")).unwrap();
        let producer = &producer;
        let direct = &direct;
        async move {
            producer
                .send(
                    FutureRecord::to(direct)
                        .partition((i % SHARDS as usize) as i32)
                        .key(&format!("d{i}"))
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
        }
    });
    futures::future::join_all(sends).await;
    wait_for_groups(&service, 100, 4).await;
    let rekeyed = service
        .metric("incidentd_kafka_messages_total", &["outcome=\"rekeyed\""])
        .await;
    assert!(rekeyed > 0.0, "strays went through the keyed topic");
}

/// A re-keyed record carries its source record's Kafka timestamp, so the
/// age a replica reports for stored alerts counts from the alert's producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekeyed_record_carries_its_source_s_timestamp() {
    let names = Names::new("age");
    let source = cluster_topics(&names, "alerts").await;
    let sources = format!("[[kafka.sources]]\ntopic = \"{source}\"\nformat = \"native\"\n");
    let service = one_replica_by_alertname(&names, &sources).await;
    let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let payload = serde_json::to_vec(&native_alert("Aged", 1, "warning")).unwrap();
    producer()
        .send(
            FutureRecord::to(&source)
                .key("aged")
                .payload(&payload)
                .timestamp(an_hour_ago),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    wait_for_groups(&service, 1, 1).await;

    let keyed = reader(&names, &names.topic("keyed"));
    let record = tokio::time::timeout(Duration::from_secs(30), keyed.recv())
        .await
        .expect("the re-keyed record within 30 s")
        .expect("reading the keyed topic");
    let header = record
        .headers()
        .and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "incidentd-source-timestamp")
        })
        .and_then(|h| h.value)
        .expect("the re-keyed record's source timestamp header");
    assert_eq!(header, an_hour_ago.to_string().as_bytes());
    let own = record.timestamp().to_millis().expect("a record timestamp");
    assert!(
        own > an_hour_ago + 3_000_000,
        "the record's own timestamp is when it was re-keyed"
    );
    for stage in ["rekeyed", "stored"] {
        let label = format!("stage=\"{stage}\"");
        wait_until(
            &format!("an age of an hour at stage {stage}"),
            Duration::from_secs(30),
            &[&service],
            || async {
                let age = service
                    .metric("incidentd_kafka_record_age_seconds_sum", &[&label])
                    .await;
                if age >= 3_600.0 {
                    Ok(())
                } else {
                    Err(format!("summed age {age} s"))
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shard_pauses_its_partition_and_nothing_is_lost() {
    let names = Names::new("pause");
    let alerts = cluster_topics(&names, "alerts").await;
    // A shard holds at most 5 alerts not yet stored and a partition buffers
    // 20 messages, so a burst read straight by the shard consumers (a
    // shard-keyed source) must pause partitions. (The kafka keys go before
    // the sources' array of tables.)
    let sources = format!(
        "max_batch = 5\npartition_buffer = 20\n[[kafka.sources]]\ntopic = \"{alerts}\"\nformat = \"native\"\nkeyed_by_group_key = true\n"
    );
    let service = Service::start(&cluster_config(
        &names,
        "shard_capacity = 5",
        &sources,
        "[routing]\ngroup_by = [\"alertname\"]\n",
    ))
    .await;
    let producer = producer();
    let sends = (0..3_000).map(|i| {
        let payload =
            serde_json::to_vec(&native_alert(&format!("P{}", i % 50), i, "warning")).unwrap();
        let producer = &producer;
        let alerts = &alerts;
        async move { produce(producer, alerts, &format!("p{i}"), &payload).await }
    });
    futures::future::join_all(sends).await;
    wait_for_groups(&service, 50, 60).await;
    let pauses = service
        .metric("incidentd_kafka_partition_pauses_total", &[])
        .await;
    assert!(
        pauses > 0.0,
        "a partition was paused while its shard was full"
    );
}

/// Each replica delivers the events of the shards it owns, so a webhook
/// subscription must run on every replica: one created on A reaches B at
/// B's next reload, and a deletion on A stops B too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_made_on_one_replica_delivers_from_every_replica() {
    let names = Names::new("subscriptions");
    let alerts = cluster_topics(&names, "alerts").await;
    let receiver = WebhookReceiver::start(Vec::new()).await;
    let sources = format!("[[kafka.sources]]\ntopic = \"{alerts}\"\nformat = \"native\"\n");
    let extra = "[subscriptions]\nrefresh_interval = \"200ms\"\n";
    let config = cluster_config(&names, "", &sources, extra);
    let (a, b) = two_replicas(&config).await;

    let subscription = json!({ "url": receiver.url, "filter": { "types": ["created"] } });
    let response = a.post_json("/api/v1/subscriptions", &subscription).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Several reloads' time, so B runs it too.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let producer = producer();
    let groups = 40;
    for g in 0..groups {
        let payload = serde_json::to_vec(&native_alert(&format!("S{g}"), g, "critical")).unwrap();
        produce(&producer, &alerts, &format!("s{g}"), &payload).await;
    }
    let created = || {
        receiver
            .received()
            .iter()
            .map(|r| r.headers["ce-id"].to_str().unwrap().to_string())
            .collect::<BTreeSet<String>>()
    };
    wait_until(
        "every incident's created event delivered",
        Duration::from_secs(60),
        &[&a, &b],
        || async {
            let delivered = created().len();
            if delivered == groups {
                Ok(())
            } else {
                Err(format!("{delivered} of {groups} delivered"))
            }
        },
    )
    .await;
    let path = format!("/api/v1/subscriptions/{id}/deliveries");
    for replica in [&a, &b] {
        let delivered = replica.get_json(&path).await["counts"]["delivered"]
            .as_u64()
            .unwrap();
        assert!(
            delivered > 0,
            "{} delivered none: it owns shards, so it must deliver their events",
            replica.base
        );
    }

    let response = a.delete(&format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(response.status(), 204);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = receiver.received().len();
    for g in groups..groups + 20 {
        let payload = serde_json::to_vec(&native_alert(&format!("S{g}"), g, "critical")).unwrap();
        produce(&producer, &alerts, &format!("s{g}"), &payload).await;
    }
    wait_until(
        "the new incidents opened",
        Duration::from_secs(60),
        &[&a, &b],
        || async {
            let open = b.try_all_incidents().await?.len();
            if open == groups + 20 {
                Ok(())
            } else {
                Err(format!("{open} incidents"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        before,
        "no replica delivers after the delete"
    );
}

/// A Pulsar source feeds a cluster like HTTP does: each replica reads its
/// share of the Pulsar topic and hands the alerts to the keyed topic, so
/// they reach whichever replica owns their shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_from_a_pulsar_topic_reach_the_cluster_s_shards() {
    let names = Names::new("pulsar-source");
    cluster_topics(&names, "unused").await;
    let topic = format!("persistent://public/default/{}", names.run);
    let client = common::pulsar::client().await;
    // The replicas' subscription exists before anything is produced.
    common::pulsar::subscribe(&client, &topic, "incidentd", SubType::KeyShared).await;
    let pulsar = format!(
        "[pulsar]\nurl = \"{}\"\n[[pulsar.sources]]\ntopic = \"{topic}\"\nformat = \"native\"\n",
        common::pulsar::pulsar_url()
    );
    let config = cluster_config(&names, "", "", &pulsar);
    let (a, _b) = two_replicas(&config).await;

    let mut producer = common::pulsar::producer(&client, &topic).await;
    let (groups, alerts) = (20, 3);
    for g in 0..groups {
        for instance in 0..alerts {
            let alert = native_alert(&format!("P{g}"), instance, "warning");
            common::pulsar::produce(&mut producer, serde_json::to_vec(&alert).unwrap()).await;
        }
    }
    wait_for_groups(&a, groups, alerts as u64).await;
}
