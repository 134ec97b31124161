//! Snapshots in Redis, shared by every replica. Each shard has its own key
//! space, hash-tagged (`{shard-N}`) so it lives in one Redis Cluster slot
//! and one script can write it atomically:
//!
//! - `<prefix>:{shard-N}:live`        HASH incident id -> whole encoded incident
//! - `<prefix>:{shard-N}:changes:<id>` STRING change frames appended since the whole was written
//! - `<prefix>:{shard-N}:offsets`     HASH source -> highest applied offset
//! - `<prefix>:{shard-N}:epoch`       INT, bumped by every owner that claims the shard
//! - `<prefix>:{shard-N}:archive:<id>` STRING, expires after `archive_ttl`
//! - `<prefix>:{shard-N}:quarantine`  HASH incident id -> bytes the engine could not decode
//! - `<prefix>:{shard-N}:summaries`   HASH incident id -> summary (`redis_summaries.rs`), what lists read
//!
//! Webhook subscriptions (`redis_subscriptions.rs`) and PagerDuty trigger keys
//! (`redis_pagerduty_keys.rs`) have keys of their own.
//!
//! Fencing (invariant 6): `load_shard` claims the shard by incrementing its
//! epoch, and every save checks, inside the same script that writes, that
//! the epoch is still the one this handle claimed. A replica that lost the
//! shard therefore writes nothing and gets `StoreError::Fenced`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use incidentd_actors::model::{IncidentId, IncidentSummary};
use incidentd_actors::ports::{
    ShardSnapshot, SnapshotBatch, SnapshotStore, SnapshotWrite, StoreError,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, IntoConnectionInfo, RedisResult, Script};

use super::redis_summaries::{decode_summary, encode_summary};
use crate::config::{StoreConfig, WriteFormats};
use crate::telemetry;

/// Fields per HSCAN page at restore: big enough to need few round trips,
/// small enough that one page never blocks Redis for long.
const SCAN_PAGE: usize = 5000;

/// Longest pause between reconnect attempts. The engine retries a failed
/// flush by itself, so a long driver backoff would only delay noticing that
/// Redis is back (the default grows to several seconds).
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// The save script's answers when it stored the batch and when a newer
/// epoch owns the shard.
const STORED: i64 = 1;
const FENCED: i64 = 0;

/// One flush, all or nothing. Redis runs a script without interleaving
/// other commands, so the epoch check and the writes cannot be separated.
/// Writes made before an error in a script are not undone, so every check
/// comes before the first write. Change frames go to a string key of their
/// own with APPEND, which costs about the frame; appending to the hash
/// field would copy the whole stored value in Lua at every commit.
///
/// KEYS: epoch, live, offsets, summaries, then the changes key of each
/// whole upsert, of each change frame, and the archive and changes keys of
/// each archived incident.
/// ARGV: our epoch, archive TTL in seconds, number of whole upserts, number
/// of change frames, number of archived, number of summaries, then
/// (id, bytes) per whole upsert, (id, frame) per change frame, (id, bytes)
/// per archived incident, (id, summary) per summary, and (source, offset)
/// pairs up to the end.
///
/// Returns 1 when stored, 0 when a newer epoch owns the shard, and -n when
/// the n-th change frame's incident has nothing stored to append to.
const SAVE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local ttl = ARGV[2]
local wholes = tonumber(ARGV[3])
local appends = tonumber(ARGV[4])
local archived = tonumber(ARGV[5])
local summaries = tonumber(ARGV[6])
local i = 7
local k = 5
local frame = i + 2 * wholes
for n = 1, appends do
  if redis.call('HEXISTS', KEYS[2], ARGV[frame]) == 0 then
    return -n
  end
  frame = frame + 2
end
for _ = 1, wholes do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('DEL', KEYS[k])
  i = i + 2
  k = k + 1
end
for _ = 1, appends do
  redis.call('APPEND', KEYS[k], ARGV[i + 1])
  i = i + 2
  k = k + 1
end
for _ = 1, archived do
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('SET', KEYS[k], ARGV[i + 1], 'EX', ttl)
  redis.call('DEL', KEYS[k + 1])
  i = i + 2
  k = k + 2
end
for _ = 1, summaries do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"#;

/// The Redis snapshot store. One handle per process; the connection is
/// multiplexed and reconnects by itself with backoff.
pub struct RedisStore {
    pub(super) connection: ConnectionManager,
    pub(super) key_prefix: String,
    command_timeout: Duration,
    archive_ttl_secs: u64,
    write_formats: WriteFormats,
    /// The epoch this handle claimed per shard at load; every save carries it.
    epochs: Mutex<HashMap<usize, u64>>,
    save_script: Script,
}

/// The URL's connection with TCP_NODELAY (the redis crate leaves Nagle's
/// algorithm on): every shard's commits and lookups share one multiplexed
/// connection, and a small command written behind an unacknowledged one
/// would wait for the server's delayed ACK.
fn connection_info(url: &str) -> Result<ConnectionInfo, StoreError> {
    // The URL may hold a password, so errors do not repeat it.
    let info = url
        .into_connection_info()
        .map_err(|e| unavailable("invalid store.redis_url", e))?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Ok(info.set_tcp_settings(tcp))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {what}: {e}"))
}

impl RedisStore {
    /// Connects within `connect_timeout`, or fails with `Unavailable`.
    pub async fn connect(config: &StoreConfig) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(connection_info(&config.redis_url)?)
            .map_err(|e| unavailable("invalid store.redis_url", e))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connection = tokio::time::timeout(
            config.connect_timeout,
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|_| {
            unavailable(
                "connect",
                format!("no connection within {:?}", config.connect_timeout),
            )
        })?
        .map_err(|e| unavailable("connect", e))?;
        Ok(RedisStore {
            connection,
            key_prefix: config.key_prefix.clone(),
            command_timeout: config.command_timeout,
            archive_ttl_secs: config.archive_ttl.as_secs(),
            write_formats: config.write_formats,
            epochs: Mutex::new(HashMap::new()),
            save_script: Script::new(SAVE_SCRIPT),
        })
    }

    /// Reads a whole hash in pages with HSCAN (never one giant reply).
    pub(super) async fn scan_hash(
        &self,
        key: &str,
        command: &'static str,
        what: &str,
    ) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        // HSCAN may return a field twice; the map keeps one of each.
        let mut fields: HashMap<String, Vec<u8>> = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, HashMap<String, Vec<u8>>) = self
                .run(
                    command,
                    what,
                    redis::cmd("HSCAN")
                        .arg(key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_PAGE)
                        .query_async(&mut connection),
                )
                .await?;
            fields.extend(page);
            if next == 0 {
                return Ok(fields);
            }
            cursor = next;
        }
    }

    /// Every live incident's summary over all `shards`, as their owners last
    /// stored them: what `GET /api/v1/incidents` lists on any replica. It
    /// lags the owners by about one group commit (longer while their
    /// store is failing).
    pub async fn summaries(&self, shards: usize) -> Result<Vec<Arc<IncidentSummary>>, StoreError> {
        let started = Instant::now();
        let mut summaries = Vec::new();
        for shard in 0..shards {
            let key = self.key(shard, "summaries");
            for (id, bytes) in self.scan_hash(&key, "list", "read summaries").await? {
                match decode_summary(&bytes) {
                    Ok(summary) => summaries.push(Arc::new(summary)),
                    Err(e) => {
                        tracing::warn!(shard, incident = %id, error = %e, "skipping an unreadable incident summary")
                    }
                }
            }
        }
        record_duration("list", started);
        Ok(summaries)
    }

    /// The shard whose owner last stored a summary of incident `id`, if any:
    /// where a command for it must go.
    pub async fn shard_of_incident(
        &self,
        id: IncidentId,
        shards: usize,
    ) -> Result<Option<usize>, StoreError> {
        let found: Vec<bool> = self
            .on_every_shard(
                ("HEXISTS", "summaries"),
                id,
                shards,
                "locate",
                "locate an incident",
            )
            .await?;
        Ok(found.iter().position(|exists| *exists))
    }

    /// Incident `id` as its owner last stored it (the encoded snapshot and
    /// its change frames), from whichever of the `shards` holds it: how a
    /// replica that does not own the incident answers a GET for it.
    pub async fn stored_incident(
        &self,
        id: IncidentId,
        shards: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let found: Vec<Option<Vec<u8>>> = self
            .on_every_shard(("HGET", "live"), id, shards, "get", "read an incident")
            .await?;
        let Some((shard, whole)) = found
            .into_iter()
            .enumerate()
            .find_map(|(shard, whole)| Some((shard, whole?)))
        else {
            return Ok(None);
        };
        let id = id.to_string();
        let changes = self.changes_of(shard, &[id.as_str()], "get").await?;
        Ok(Some([whole.as_slice(), &changes[0]].concat()))
    }

    /// One hash command about incident `id` (e.g. `HGET` on `live`) sent to
    /// that hash of each of the `shards` in one pipeline: which shard holds
    /// an incident is known only to its owner. One answer per shard.
    async fn on_every_shard<T: redis::FromRedisValue>(
        &self,
        (command, hash): (&str, &str),
        id: IncidentId,
        shards: usize,
        metric: &'static str,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut connection = self.connection.clone();
        let mut pipeline = redis::pipe();
        for shard in 0..shards {
            pipeline
                .cmd(command)
                .arg(self.key(shard, hash))
                .arg(id.to_string());
        }
        self.run(metric, what, pipeline.query_async(&mut connection))
            .await
    }

    /// `<prefix>:{shard-N}:<name>`: the braces make the shard number the
    /// Redis Cluster hash tag.
    fn key(&self, shard: usize, name: &str) -> String {
        format!("{}:{{shard-{shard}}}:{name}", self.key_prefix)
    }

    /// Where the change frames of incident `id` are appended.
    fn changes_key(&self, shard: usize, id: impl std::fmt::Display) -> String {
        self.key(shard, &format!("changes:{id}"))
    }

    /// The change frames stored for each of `ids` (empty when none), read
    /// with one MGET per `SCAN_PAGE` ids.
    async fn changes_of(
        &self,
        shard: usize,
        ids: &[&str],
        command: &'static str,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        let mut changes = Vec::with_capacity(ids.len());
        for page in ids.chunks(SCAN_PAGE) {
            let keys: Vec<String> = page.iter().map(|id| self.changes_key(shard, id)).collect();
            let frames: Vec<Option<Vec<u8>>> = self
                .run(
                    command,
                    "read change frames",
                    redis::cmd("MGET").arg(keys).query_async(&mut connection),
                )
                .await?;
            changes.extend(frames.into_iter().map(Option::unwrap_or_default));
        }
        Ok(changes)
    }

    /// Runs one command within the command timeout; every failure becomes
    /// `Unavailable` naming what was being done, and is counted.
    pub(super) async fn run<T>(
        &self,
        command: &'static str,
        what: &str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.command_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(unavailable(
                what,
                format!("no answer within {:?}", self.command_timeout),
            )),
        };
        if result.is_err() {
            metrics::counter!(telemetry::STORE_ERRORS, "command" => command).increment(1);
        }
        result
    }

    async fn load(&self, shard: usize) -> Result<ShardSnapshot, StoreError> {
        let mut connection = self.connection.clone();
        // Claim before reading: once the epoch is ours, the previous owner
        // cannot add anything we would miss.
        let epoch: u64 = self
            .run(
                "load",
                "claim shard",
                redis::cmd("INCR")
                    .arg(self.key(shard, "epoch"))
                    .query_async(&mut connection),
            )
            .await?;
        self.epochs.lock().unwrap().insert(shard, epoch);

        let incidents = self
            .scan_hash(&self.key(shard, "live"), "load", "read live incidents")
            .await?;
        let offsets: BTreeMap<String, i64> = self
            .run(
                "load",
                "read offsets",
                redis::cmd("HGETALL")
                    .arg(self.key(shard, "offsets"))
                    .query_async(&mut connection),
            )
            .await?;

        let ids: Vec<&str> = incidents.keys().map(String::as_str).collect();
        let changes = self.changes_of(shard, &ids, "load").await?;
        // A map not changed in between yields its entries in the order its
        // keys came in, so they line up with `changes`.
        let mut incidents: Vec<(String, Vec<u8>)> = incidents
            .into_iter()
            .zip(changes)
            .map(|((id, mut bytes), changes)| {
                bytes.extend_from_slice(&changes);
                (format!("shard-{shard}/{id}"), bytes)
            })
            .collect();
        // Ids are ULIDs: restore in creation order, the same on every run.
        incidents.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(ShardSnapshot { incidents, offsets })
    }

    async fn save(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let epoch = self.epochs.lock().unwrap().get(&shard).copied();
        let Some(epoch) = epoch else {
            return Err(unavailable(
                &format!("save shard {shard}"),
                "this replica never loaded the shard (load_shard claims it)",
            ));
        };
        let mut invocation = self.save_script.prepare_invoke();
        invocation
            .key(self.key(shard, "epoch"))
            .key(self.key(shard, "live"))
            .key(self.key(shard, "offsets"))
            .key(self.key(shard, "summaries"));
        let (wholes, appends): (Vec<_>, Vec<_>) = batch
            .upserts
            .iter()
            .partition(|(_, write)| matches!(write, SnapshotWrite::Whole(_)));
        for (id, _) in wholes.iter().chain(&appends) {
            invocation.key(self.changes_key(shard, *id));
        }
        for (id, _) in &batch.archived {
            invocation
                .key(self.key(shard, &format!("archive:{id}")))
                .key(self.changes_key(shard, *id));
        }
        invocation
            .arg(epoch)
            .arg(self.archive_ttl_secs)
            .arg(wholes.len())
            .arg(appends.len())
            .arg(batch.archived.len())
            .arg(batch.summaries.len());
        let upserts = wholes
            .iter()
            .chain(&appends)
            .map(|(id, write)| (id, write.bytes()));
        for (id, bytes) in upserts.chain(batch.archived.iter().map(|(id, bytes)| (id, bytes))) {
            invocation.arg(id.to_string()).arg(bytes.as_slice());
        }
        for summary in &batch.summaries {
            invocation
                .arg(summary.id.to_string())
                .arg(encode_summary(summary, self.write_formats));
        }
        for (source, offset) in &batch.offsets {
            invocation.arg(source).arg(*offset);
        }
        let mut connection = self.connection.clone();
        let stored: i64 = self
            .run(
                "save",
                "save batch",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        match stored {
            STORED => Ok(()),
            FENCED => {
                metrics::counter!(telemetry::STORE_FENCED_WRITES).increment(1);
                Err(StoreError::Fenced { shard })
            }
            missing => {
                let frame = usize::try_from(-missing - 1).ok();
                match frame.and_then(|n| appends.get(n)) {
                    Some((id, _)) => Err(StoreError::NothingToAppendTo { id: *id }),
                    None => Err(unavailable(
                        "save batch",
                        format!("unexpected answer {missing}"),
                    )),
                }
            }
        }
    }
}

fn record_duration(command: &'static str, started: Instant) {
    metrics::histogram!(telemetry::STORE_COMMAND_DURATION, "command" => command)
        .record(started.elapsed().as_secs_f64());
}

#[async_trait]
impl SnapshotStore for RedisStore {
    async fn load_shard(&self, shard: usize) -> Result<ShardSnapshot, StoreError> {
        let started = Instant::now();
        let result = self.load(shard).await;
        record_duration("load", started);
        result
    }

    async fn save_batch(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.save(shard, batch).await;
        record_duration("save", started);
        result
    }

    /// Moves an entry the engine could not decode from the shard's live set
    /// to its quarantine, so the next restore does not trip over it again
    /// while its bytes stay available for a post-mortem. `key` is the key
    /// `load_shard` returned (`shard-N/<id>`). An entry no longer live is
    /// left alone.
    async fn quarantine(&self, shard: usize, key: &str, reason: &str) -> Result<(), StoreError> {
        let id = key
            .strip_prefix(&format!("shard-{shard}/"))
            .ok_or_else(|| {
                unavailable(
                    "quarantine",
                    format!("key {key:?} does not belong to shard {shard}"),
                )
            })?;
        let live = self.key(shard, "live");
        let mut connection = self.connection.clone();
        let bytes: Option<Vec<u8>> = self
            .run(
                "quarantine",
                "quarantine: read",
                redis::cmd("HGET")
                    .arg(&live)
                    .arg(id)
                    .query_async(&mut connection),
            )
            .await?;
        let Some(whole) = bytes else {
            return Ok(());
        };
        // What restore failed to decode: the whole and its change frames.
        let changes = self.changes_of(shard, &[id], "quarantine").await?;
        let bytes = [whole.as_slice(), &changes[0]].concat();
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .hset(self.key(shard, "quarantine"), id, bytes)
            .ignore()
            .hdel(&live, id)
            .ignore()
            .del(self.changes_key(shard, id))
            .ignore();
        let () = self
            .run(
                "quarantine",
                "quarantine: move",
                transaction.query_async(&mut connection),
            )
            .await?;
        tracing::warn!(shard, key, reason, "snapshot entry quarantined");
        Ok(())
    }

    fn takes_counts_frames(&self) -> bool {
        self.write_formats.counts_frames()
    }
}

/// What every Redis test connects with.
#[cfg(test)]
pub(super) mod testing {
    use crate::config::StoreConfig;

    /// The Redis the tests use; without it they fail rather than skip, so a
    /// green run always means the store was really exercised.
    fn test_url() -> String {
        std::env::var("INCIDENTD_TEST_REDIS_URL").expect(
            "INCIDENTD_TEST_REDIS_URL is not set: run `scripts/services.sh up redis` and \
             export INCIDENTD_TEST_REDIS_URL=redis://127.0.0.1:6390, or run scripts/test.sh",
        )
    }

    /// A config with a key prefix of its own, so tests never share keys.
    pub fn test_config() -> StoreConfig {
        StoreConfig {
            redis_url: test_url(),
            key_prefix: format!("incidentd-test-{}", ulid::Ulid::new()),
            ..StoreConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use incidentd_actors::model::{IncidentId, Timestamp};

    use super::testing::test_config;
    use super::*;

    #[test]
    fn connections_disable_nagle_and_keep_the_url_s_settings() {
        let info = connection_info("redis://:secret@127.0.0.1:6390/3").unwrap();
        assert!(info.tcp_settings().nodelay());
        assert_eq!(info.redis_settings().db(), 3);
        let err = connection_info("http://:secret@127.0.0.1/").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    async fn connect(config: &StoreConfig) -> RedisStore {
        RedisStore::connect(config)
            .await
            .unwrap_or_else(|e| panic!("{e}; is Redis up (scripts/services.sh up redis)?"))
    }

    /// Deletes every key under the test's prefix (SCAN, never KEYS).
    async fn delete_keys(store: &RedisStore) {
        let mut connection = store.connection.clone();
        let pattern = format!("{}:*", store.key_prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .unwrap();
            if !keys.is_empty() {
                let () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }

    fn id(millis: i64) -> IncidentId {
        IncidentId::new(Timestamp(millis))
    }

    fn upserts(entries: &[(IncidentId, u8)]) -> SnapshotBatch {
        SnapshotBatch {
            upserts: entries
                .iter()
                .map(|(id, byte)| (*id, SnapshotWrite::Whole(Arc::new(vec![*byte, 0, 255]))))
                .collect(),
            ..SnapshotBatch::default()
        }
    }

    #[tokio::test]
    async fn appends_change_frames_and_refuses_them_without_a_stored_state() {
        let config = test_config();
        let store = connect(&config).await;
        incidentd_actors::ports::store_check::check_change_frames(&store, 0).await;

        // Any replica reads an incident with its frames; archiving or a
        // whole write leaves no frames behind.
        let incident = id(7);
        let write = |write| SnapshotBatch {
            upserts: vec![(incident, write)],
            ..SnapshotBatch::default()
        };
        let frame = |bytes: &[u8]| Arc::new(bytes.to_vec());
        store
            .save_batch(0, &write(SnapshotWrite::Whole(frame(&[1]))))
            .await
            .unwrap();
        store
            .save_batch(0, &write(SnapshotWrite::Append(frame(&[2, 3]))))
            .await
            .unwrap();
        let other = connect(&config).await;
        assert_eq!(
            other.stored_incident(incident, 2).await.unwrap(),
            Some(vec![1, 2, 3])
        );
        let archive = SnapshotBatch {
            archived: vec![(incident, frame(&[9]))],
            ..SnapshotBatch::default()
        };
        store.save_batch(0, &archive).await.unwrap();
        let mut connection = store.connection.clone();
        let frames_left: bool = redis::cmd("EXISTS")
            .arg(store.changes_key(0, incident))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(!frames_left, "archiving deletes the frames");
        assert_eq!(other.stored_incident(incident, 2).await.unwrap(), None);
        delete_keys(&store).await;
    }

    #[tokio::test]
    async fn saves_restores_and_archives_per_shard() {
        let config = test_config();
        let store = connect(&config).await;
        let (a, b, c) = (id(1), id(2), id(3));
        assert!(store.load_shard(0).await.unwrap().incidents.is_empty());
        assert!(store.load_shard(1).await.unwrap().incidents.is_empty());

        let mut first = upserts(&[(a, 1), (b, 2)]);
        first.offsets = BTreeMap::from([("alerts/0".to_string(), 41)]);
        store.save_batch(0, &first).await.unwrap();
        store.save_batch(1, &upserts(&[(c, 3)])).await.unwrap();
        let archive = SnapshotBatch {
            archived: vec![(a, Arc::new(vec![9]))],
            offsets: BTreeMap::from([("alerts/0".to_string(), 42)]),
            ..SnapshotBatch::default()
        };
        store.save_batch(0, &archive).await.unwrap();

        // A restart (or another replica) sees exactly what was stored.
        let restored = connect(&config).await;
        let zero = restored.load_shard(0).await.unwrap();
        assert_eq!(
            zero.incidents,
            vec![(format!("shard-0/{b}"), vec![2, 0, 255])]
        );
        assert_eq!(zero.offsets, BTreeMap::from([("alerts/0".to_string(), 42)]));
        let one = restored.load_shard(1).await.unwrap();
        assert_eq!(
            one.incidents,
            vec![(format!("shard-1/{c}"), vec![3, 0, 255])]
        );
        assert!(one.offsets.is_empty(), "offsets are per shard");

        let mut connection = store.connection.clone();
        let archive_key = store.key(0, &format!("archive:{a}"));
        let (bytes, ttl): (Vec<u8>, i64) = redis::pipe()
            .get(&archive_key)
            .ttl(&archive_key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(bytes, vec![9]);
        assert!(ttl > 0, "archived incidents expire; TTL was {ttl}");
        delete_keys(&store).await;
    }

    #[tokio::test]
    async fn an_owner_that_lost_the_shard_cannot_overwrite_it() {
        let config = test_config();
        let (old_owner, new_owner) = (connect(&config).await, connect(&config).await);
        let incident = id(1);
        old_owner.load_shard(0).await.unwrap();
        new_owner.load_shard(0).await.unwrap();

        let refused = old_owner
            .save_batch(0, &upserts(&[(incident, 1)]))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::Fenced { shard: 0 }),
            "{refused:?}"
        );
        new_owner
            .save_batch(0, &upserts(&[(incident, 2)]))
            .await
            .unwrap();

        let live = connect(&config).await.load_shard(0).await.unwrap();
        assert_eq!(
            live.incidents,
            vec![(format!("shard-0/{incident}"), vec![2, 0, 255])]
        );
        delete_keys(&old_owner).await;
    }

    #[tokio::test]
    async fn restores_a_large_shard_in_pages() {
        let config = test_config();
        let store = connect(&config).await;
        store.load_shard(3).await.unwrap();
        // Three pages' worth, so the HSCAN cursor has to be followed.
        let count = 3 * SCAN_PAGE as i64;
        let entries: Vec<(IncidentId, u8)> = (0..count).map(|i| (id(i), i as u8)).collect();
        store.save_batch(3, &upserts(&entries)).await.unwrap();

        let restored = connect(&config).await.load_shard(3).await.unwrap();
        let mut expected: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(id, byte)| (format!("shard-3/{id}"), vec![*byte, 0, 255]))
            .collect();
        expected.sort();
        assert_eq!(restored.incidents.len(), count as usize);
        assert_eq!(restored.incidents, expected);
        delete_keys(&store).await;
    }

    #[tokio::test]
    async fn quarantine_moves_an_entry_out_of_the_live_set() {
        let config = test_config();
        let store = connect(&config).await;
        let (bad, good) = (id(1), id(2));
        store.load_shard(0).await.unwrap();
        store
            .save_batch(0, &upserts(&[(bad, 7), (good, 8)]))
            .await
            .unwrap();

        store
            .quarantine(0, &format!("shard-0/{bad}"), "cannot decode")
            .await
            .unwrap();

        let live = store.load_shard(0).await.unwrap();
        assert_eq!(
            live.incidents,
            vec![(format!("shard-0/{good}"), vec![8, 0, 255])]
        );
        let mut connection = store.connection.clone();
        let kept: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(store.key(0, "quarantine"))
            .arg(bad.to_string())
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(kept, Some(vec![7, 0, 255]), "the bytes are kept");
        delete_keys(&store).await;
    }

    fn summary(id: IncidentId, title: &str) -> Arc<IncidentSummary> {
        let rules = incidentd_actors::IncidentRules::new(
            Default::default(),
            &incidentd_actors::EngineSettings::default(),
        );
        let route = Arc::new(incidentd_actors::routing::RouteSettings::manual());
        let alert = incidentd_actors::model::Alert::firing(incidentd_actors::model::Labels::from(
            [("alertname".into(), title.into())],
        ));
        let incident = incidentd_actors::model::Incident::open(
            id,
            ("default", title),
            &route,
            &alert,
            Timestamp(1),
            &rules,
            &mut Vec::new(),
        );
        Arc::new(incident.summary())
    }

    #[tokio::test]
    async fn any_handle_lists_the_summaries_every_shard_stored() {
        let config = test_config();
        let (owner, other_replica) = (connect(&config).await, connect(&config).await);
        let (a, b) = (id(1), id(2));
        for shard in 0..2 {
            owner.load_shard(shard).await.unwrap();
        }
        let mut first = upserts(&[(a, 1)]);
        first.summaries = vec![summary(a, "DiskFull")];
        owner.save_batch(0, &first).await.unwrap();
        let mut second = upserts(&[(b, 2)]);
        second.summaries = vec![summary(b, "CpuHot")];
        owner.save_batch(1, &second).await.unwrap();

        let mut titles: Vec<String> = other_replica
            .summaries(2)
            .await
            .unwrap()
            .iter()
            .map(|s| s.title.to_string())
            .collect();
        titles.sort();
        assert_eq!(titles, vec!["CpuHot", "DiskFull"]);

        let archive = SnapshotBatch {
            archived: vec![(a, Arc::new(vec![1]))],
            ..SnapshotBatch::default()
        };
        owner.save_batch(0, &archive).await.unwrap();
        let left = other_replica.summaries(2).await.unwrap();
        assert_eq!(left.len(), 1, "archived incidents leave the list");
        assert_eq!(left[0].id, b);
        delete_keys(&owner).await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_a_hang() {
        let config = StoreConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            connect_timeout: Duration::from_millis(500),
            ..StoreConfig::default()
        };
        // Generous bound: it only has to show that connecting gives up.
        let outcome = tokio::time::timeout(Duration::from_secs(10), RedisStore::connect(&config))
            .await
            .expect("connect must give up within its connect timeout");
        match outcome {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.starts_with("redis: connect"), "{message}")
            }
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("nothing listens on 127.0.0.1:1"),
        }
    }
}
