//! A rolling upgrade runs replicas of two builds on one Redis. With
//! `store.write_formats = "2026-11-28"` a replica writes only what builds
//! from that day read: no counts frames (they quarantine an incident that
//! has one) and summaries as JSON (they read no other form). With the
//! default, `current`, it writes both newer forms; seeing them there shows
//! that this test can tell the two apart.
//!
//! Needs `redis-server` (installed by `scripts/services.sh up redis`, which
//! `scripts/test.sh` runs); the test starts its own on a free port.

mod common;

use common::load::native_alert;
use common::redis::Redis;
use common::Service;

/// First byte of a counts frame (`actors/src/incident/codec.rs`).
const COUNTS_FRAME: u8 = 0x81;
/// First byte of a binary summary (`src/store/redis_summaries.rs`).
const BINARY_SUMMARY: u8 = 1;

/// What one replica stored for an alert sent three times (one incident,
/// then duplicates): the first byte of each summary and of each incident's
/// appended frames.
struct StoredForms {
    summaries: Vec<u8>,
    frames: Vec<u8>,
}

async fn stored_forms(write_formats: &str) -> StoredForms {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let config = format!(
        "[store]\nkind = \"redis\"\nredis_url = \"{}\"\nwrite_formats = \"{write_formats}\"\n\n[engine]\nshards = 1\n",
        redis.url()
    );
    let service = Service::start(&config).await;
    let alert = native_alert("DiskFull", 1, "critical");
    for _ in 0..3 {
        // Answered once stored: each request is its own commit.
        let response = service.post_json("/api/v1/alerts", &alert).await;
        assert!(response.status().is_success(), "{}", response.status());
    }

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let summaries: Vec<Vec<u8>> = redis::cmd("HVALS")
        .arg("incidentd:{shard-0}:summaries")
        .query_async(&mut connection)
        .await
        .unwrap();
    let change_keys: Vec<String> = redis::cmd("KEYS")
        .arg("incidentd:{shard-0}:changes:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut frames = Vec::new();
    for key in change_keys {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        frames.push(bytes[0]);
    }
    assert_eq!(summaries.len(), 1, "one incident");
    let warned = service
        .log_text()
        .contains("store.write_formats: writing only the formats builds of 2026-11-28 read");
    assert_eq!(
        warned,
        write_formats != "current",
        "the log says when older formats are written"
    );
    StoredForms {
        summaries: summaries.iter().map(|summary| summary[0]).collect(),
        frames,
    }
}

#[tokio::test]
async fn replicas_write_what_the_named_older_build_reads() {
    let older = stored_forms("2026-11-28").await;
    assert_eq!(older.summaries, vec![b'{'], "summaries as JSON");
    assert!(
        !older.frames.contains(&COUNTS_FRAME),
        "no counts frame: {:x?}",
        older.frames
    );

    let current = stored_forms("current").await;
    assert_eq!(current.summaries, vec![BINARY_SUMMARY]);
    assert_eq!(
        current.frames,
        vec![COUNTS_FRAME],
        "duplicates since the whole write are one counts frame, the newer form"
    );
}
