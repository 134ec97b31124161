//! Restoring from Redis at scale, and past a corrupt entry. The time of the
//! 100k restore is printed for benches/README.md; the test asserts only that
//! everything came back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use incidentd::config::StoreConfig;
use incidentd::store::RedisStore;
use incidentd_actors::escalation::EscalationPolicies;
use incidentd_actors::model::{Alert, IncidentId, Labels, Timestamp};
use incidentd_actors::ports::memory::CollectingSink;
use incidentd_actors::ports::{SnapshotBatch, SnapshotStore, SnapshotWrite, TokioClock};
use incidentd_actors::routing::{RouteConfig, RoutingTree};
use incidentd_actors::{encode_incident, Engine, EngineSettings, IncidentRules, Ports};

fn redis_config() -> StoreConfig {
    let url = std::env::var("INCIDENTD_TEST_REDIS_URL")
        .expect("INCIDENTD_TEST_REDIS_URL is not set: run scripts/test.sh, or scripts/services.sh up redis and export it");
    StoreConfig {
        redis_url: url,
        key_prefix: format!("incidentd-restore-{}", ulid::Ulid::new()),
        command_timeout: Duration::from_secs(30),
        ..StoreConfig::default()
    }
}

/// Stores `count` incidents spread over the shards, as flushes would.
async fn seed(store: &RedisStore, count: usize) {
    let rules = IncidentRules::new(EscalationPolicies::default(), &EngineSettings::default());
    let route = Arc::new(
        RoutingTree::new(&RouteConfig::default(), &EscalationPolicies::default())
            .map(|tree| {
                tree.route(&Alert::firing(Labels::new()))[0]
                    .settings
                    .clone()
            })
            .expect("default routing"),
    );
    let shards = shards();
    for shard in 0..shards {
        store.load_shard(shard).await.expect("claim shard");
    }
    let mut batches: Vec<SnapshotBatch> = (0..shards).map(|_| SnapshotBatch::default()).collect();
    for n in 0..count {
        let labels = Labels::from([("alertname".into(), format!("a{n}").into())]);
        let alert = Alert::firing(labels);
        let id = IncidentId(ulid::Ulid::from_parts(
            1_800_000_000_000 + n as u64,
            n as u128,
        ));
        let group = format!("root:{{alertname=\"a{n}\"}}");
        let incident = incidentd_actors::model::Incident::open(
            id,
            ("default", &group),
            &route,
            &alert,
            Timestamp(1_800_000_000_000),
            &rules,
            &mut Vec::new(),
        );
        let shard = n % shards;
        batches[shard].upserts.push((
            id,
            SnapshotWrite::Whole(Arc::new(encode_incident(&incident))),
        ));
        if batches[shard].upserts.len() == 5_000 {
            let batch = std::mem::take(&mut batches[shard]);
            store.save_batch(shard, &batch).await.expect("save");
        }
    }
    for (shard, batch) in batches.iter().enumerate() {
        store.save_batch(shard, batch).await.expect("save");
    }
}

async fn start(config: &StoreConfig) -> (Engine, incidentd_actors::RestoreReport) {
    let store = RedisStore::connect(config).await.expect("connect to Redis");
    let (tree, policies) =
        incidentd_actors::compile_rules(&RouteConfig::default(), Vec::new()).unwrap();
    let settings = EngineSettings {
        shards: shards(),
        ..EngineSettings::default()
    };
    let ports = Ports {
        store: Arc::new(store),
        sink: Arc::new(CollectingSink::default()),
        clock: Arc::new(TokioClock::new()),
    };
    Engine::start(settings, tree, policies, ports)
        .await
        .expect("engine starts")
}

async fn cleanup(config: &StoreConfig) {
    let client = redis::Client::open(config.redis_url.as_str()).unwrap();
    // Right after a million-incident run Redis may still be rewriting its
    // append-only file and answer slowly; the default timeouts are seconds.
    let patient = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(30)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&patient)
        .await
        .unwrap();
    // Test-only clean-up of a prefix unique to this test; restore never uses KEYS.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.key_prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    // UNLINK frees in the background: a DEL of hashes holding a million
    // incidents outlasts the client's response timeout.
    if !keys.is_empty() {
        let () = redis::cmd("UNLINK")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// 2 (one per core here) by default; `INCIDENTD_RESTORE_SHARDS` measures
/// other counts (see benches/README.md).
fn shards() -> usize {
    std::env::var("INCIDENTD_RESTORE_SHARDS")
        .ok()
        .map(|v| v.parse().expect("INCIDENTD_RESTORE_SHARDS is a number"))
        .unwrap_or(2)
}

/// 100,000 by default; `INCIDENTD_RESTORE_COUNT=1000000` measures a million
/// (see benches/README.md).
fn restore_count() -> usize {
    std::env::var("INCIDENTD_RESTORE_COUNT")
        .ok()
        .map(|v| v.parse().expect("INCIDENTD_RESTORE_COUNT is a number"))
        .unwrap_or(100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_100k_incidents() {
    let config = redis_config();
    let count = restore_count();
    seed(&RedisStore::connect(&config).await.unwrap(), count).await;
    let started = Instant::now();
    let (engine, report) = start(&config).await;
    let took = started.elapsed();
    println!(
        "restored {} incidents from Redis in {:.2}s ({} shards)",
        report.incidents,
        took.as_secs_f64(),
        shards()
    );
    assert_eq!(report.incidents, count);
    assert!(report.rejected.is_empty());
    assert_eq!(engine.read_model().len(), count);
    engine.shutdown().await;
    cleanup(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entry_is_reported_moved_aside_and_the_rest_restored() {
    let config = redis_config();
    seed(&RedisStore::connect(&config).await.unwrap(), 10).await;
    let client = redis::Client::open(config.redis_url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let bad = IncidentId(ulid::Ulid::from_parts(5, 5));
    let live = format!("{}:{{shard-0}}:live", config.key_prefix);
    let () = redis::cmd("HSET")
        .arg(&live)
        .arg(bad.to_string())
        .arg(b"\x01garbage".as_slice())
        .query_async(&mut connection)
        .await
        .unwrap();

    let (engine, report) = start(&config).await;
    assert_eq!(report.incidents, 10, "every good entry restored");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].key, format!("shard-0/{bad}"));
    engine.shutdown().await;
    let quarantined: u64 = redis::cmd("HLEN")
        .arg(format!("{}:{{shard-0}}:quarantine", config.key_prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(quarantined, 1);
    let still_live: bool = redis::cmd("HEXISTS")
        .arg(&live)
        .arg(bad.to_string())
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!still_live, "the bad entry left the live set");
    cleanup(&config).await;
}
