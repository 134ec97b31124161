use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use incidentd_actors::model::IncidentId;
use incidentd_actors::ports::{ShardSnapshot, SnapshotBatch, SnapshotStore, StoreError};
use redb::{
    Database, Key, ReadOnlyTable, ReadableDatabase, TableDefinition, Value, WriteTransaction,
};

use super::local_log::ShardLog;
use super::local_log_deleter::SegmentDeleter;
use crate::telemetry;

/// Archived incidents, kept for post-mortems and analytics: (shard, incident
/// id) -> final state. They reach this table when the log segment that
/// recorded their archiving is compacted away.
const ARCHIVE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("archived_incidents");
/// Entries the engine could not decode, moved aside: (shard, store key) -> bytes.
const QUARANTINE: TableDefinition<(u32, &str), &[u8]> =
    TableDefinition::new("quarantined_snapshots");

/// A shard log's segment takes no more commits past this size. Compaction
/// drops whole segments, so the log holds at most about twice the live
/// incidents' bytes plus one segment.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// The embedded store, in the data directory: live incidents, their change
/// frames and source offsets in one append-only log per shard
/// (`live-log/shard-N/`, see `local_log`), and the archive, quarantine,
/// webhook subscriptions and PagerDuty keys in `incidentd.redb`. Each
/// batch is one record of its shard's log, flushed before the engine
/// answers; shards flush their own files side by side.
#[derive(Clone)]
pub struct LocalStore {
    pub(super) db: Arc<Database>,
    logs_dir: PathBuf,
    segment_bytes: u64,
    /// Each shard's log, opened (read through) on first use.
    logs: Arc<Mutex<HashMap<u32, LogSlot>>>,
    deleter: Arc<SegmentDeleter>,
    flush: Arc<SharedFlush>,
}

/// Small writes to `incidentd.redb` share their flushes: each is committed
/// without one, then waits for a durable commit begun after it, which
/// persists every commit before it. Callers that arrive while a flush runs
/// are covered by the next, one flush for all of them.
#[derive(Default)]
struct SharedFlush {
    /// Commits made without a flush so far.
    committed: AtomicU64,
    /// How many of them a durable commit has persisted.
    flushed: Mutex<u64>,
}

/// A shard's log, None until its first use opens it.
type LogSlot = Arc<Mutex<Option<ShardLog>>>;

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("local store: {what}: {e}"))
}

impl LocalStore {
    /// Opens (or creates) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<LocalStore, StoreError> {
        LocalStore::open_with_segments(data_dir, SEGMENT_BYTES)
    }

    fn open_with_segments(data_dir: &Path, segment_bytes: u64) -> Result<LocalStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| unavailable(&format!("create {}", data_dir.display()), e))?;
        let path = data_dir.join("incidentd.redb");
        let db = Database::create(&path)
            .map_err(|e| unavailable(&format!("open {}", path.display()), e))?;
        let store = LocalStore {
            db: Arc::new(db),
            logs_dir: data_dir.join("live-log"),
            segment_bytes,
            logs: Arc::default(),
            deleter: Arc::new(SegmentDeleter::start()?),
            flush: Arc::default(),
        };
        let txn = store.write()?;
        let migrated = super::local_migration::migrate(&txn, &store)?;
        if migrated > 0 {
            tracing::info!(
                incidents = migrated,
                path = %path.display(),
                "moved the local store's live incidents to the shard logs"
            );
        }
        for table in [ARCHIVE, QUARANTINE] {
            txn.open_table(table)
                .map_err(|e| unavailable("create table", e))?;
        }
        super::local_subscriptions::create_tables(&txn)?;
        super::local_pagerduty_keys::create_tables(&txn)?;
        txn.commit().map_err(|e| unavailable("commit", e))?;
        Ok(store)
    }

    /// `definition`'s table, in a read transaction of its own.
    pub(super) fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| unavailable("begin read", e))?;
        txn.open_table(definition)
            .map_err(|e| unavailable("open table", e))
    }

    pub(super) fn write(&self) -> Result<WriteTransaction, StoreError> {
        self.db
            .begin_write()
            .map_err(|e| unavailable("begin write", e))
    }

    /// Commits `txn` durably, sharing the flush with the commits of other
    /// callers doing the same (see `SharedFlush`).
    pub(super) fn commit_shared(&self, mut txn: WriteTransaction) -> Result<(), StoreError> {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| unavailable("set durability", e))?;
        txn.commit().map_err(|e| unavailable("commit", e))?;
        let mine = self.flush.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flush.flushed.lock().expect("shared flush");
        if *flushed >= mine {
            return Ok(());
        }
        // Every commit counted by now has returned, so this flush covers it.
        let covered = self.flush.committed.load(Ordering::SeqCst);
        self.write()?
            .commit()
            .map_err(|e| unavailable("commit", e))?;
        *flushed = covered;
        Ok(())
    }

    /// Runs `call` on `shard`'s log, opening it first if this is its first
    /// use. Shards wait only for their own log.
    pub(super) fn with_log<T>(
        &self,
        shard: u32,
        call: impl FnOnce(&mut ShardLog) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let slot = {
            let mut logs = self.logs.lock().expect("shard logs");
            logs.entry(shard).or_default().clone()
        };
        let mut slot = slot.lock().expect("shard log");
        if slot.is_none() {
            let dir = self.logs_dir.join(format!("shard-{shard}"));
            *slot = Some(ShardLog::open(&dir, self.segment_bytes)?);
        }
        call(slot.as_mut().expect("opened above"))
    }

    fn save_blocking(&self, shard: u32, batch: &SnapshotBatch) -> Result<(), StoreError> {
        self.with_log(shard, |log| {
            log.commit(batch)?;
            // The batch is durable whatever the compaction's outcome; a
            // failed one is tried again after the next commit.
            if log.wants_compaction() {
                let started = std::time::Instant::now();
                let outcome = match log.compact_oldest(|archived| self.archive(shard, archived)) {
                    Ok(retired) => {
                        if let Some(segment) = retired {
                            self.deleter.delete(segment);
                        }
                        "done"
                    }
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "compacting the local store's log failed");
                        "failed"
                    }
                };
                metrics::histogram!(telemetry::LOCAL_LOG_COMPACTION_DURATION, "outcome" => outcome)
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(())
        })
    }

    /// Stores incidents archived in a log segment about to be dropped.
    fn archive(&self, shard: u32, archived: Vec<(IncidentId, Vec<u8>)>) -> Result<(), StoreError> {
        if archived.is_empty() {
            return Ok(());
        }
        let txn = self.write()?;
        {
            let mut archive = txn
                .open_table(ARCHIVE)
                .map_err(|e| unavailable("open table", e))?;
            for (id, bytes) in archived {
                archive
                    .insert((shard, id.to_string().as_str()), bytes.as_slice())
                    .map_err(|e| unavailable("write", e))?;
            }
        }
        txn.commit().map_err(|e| unavailable("commit", e))
    }

    /// Keeps the live incident's bytes in the quarantine table, then takes
    /// it out of the live set. A crash between leaves it in both, and the
    /// next restore quarantines it again.
    fn quarantine_blocking(&self, shard: u32, key: &str) -> Result<(), StoreError> {
        let id: Option<IncidentId> = key
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .map(IncidentId);
        let Some(id) = id else {
            return Err(unavailable(
                "quarantine",
                format!("{key} does not name an incident of this store"),
            ));
        };
        self.with_log(shard, |log| {
            let Some(bytes) = log.current(id)? else {
                return Ok(());
            };
            let txn = self.write()?;
            {
                let mut quarantine = txn
                    .open_table(QUARANTINE)
                    .map_err(|e| unavailable("open table", e))?;
                quarantine
                    .insert((shard, key), bytes.as_slice())
                    .map_err(|e| unavailable("write", e))?;
            }
            txn.commit().map_err(|e| unavailable("commit", e))?;
            log.remove(id)
        })
    }

    #[cfg(test)]
    fn archived_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let archive = self.read_table(ARCHIVE)?;
        archive.len().map_err(|e| unavailable("read", e))
    }
}

/// Runs one blocking store call off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    store: &LocalStore,
    call: impl FnOnce(&LocalStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| unavailable("store task", e))?
}

#[async_trait]
impl SnapshotStore for LocalStore {
    async fn load_shard(&self, shard: usize) -> Result<ShardSnapshot, StoreError> {
        let shard = shard as u32;
        blocking(self, move |store| {
            store.with_log(shard, |log| log.load(shard))
        })
        .await
    }

    async fn save_batch(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let batch = batch.clone();
        blocking(self, move |store| store.save_blocking(shard as u32, &batch)).await
    }

    async fn quarantine(&self, shard: usize, key: &str, reason: &str) -> Result<(), StoreError> {
        tracing::warn!(shard, key, reason, "moving an undecodable snapshot aside");
        let key = key.to_string();
        blocking(self, move |store| {
            store.quarantine_blocking(shard as u32, &key)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use incidentd_actors::model::Timestamp;
    use incidentd_actors::ports::SnapshotWrite;

    use super::super::local_log_record::OP_OVERHEAD;
    use super::*;

    #[tokio::test]
    async fn a_refused_batch_leaves_nothing_to_append_to_and_a_reopened_store_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let (a, b, c) = (
            IncidentId::new(Timestamp(10)),
            IncidentId::new(Timestamp(11)),
            IncidentId::new(Timestamp(12)),
        );
        let batch = |upserts| SnapshotBatch {
            upserts,
            ..SnapshotBatch::default()
        };
        let bytes = |byte: u8| Arc::new(vec![byte]);
        store
            .save_batch(0, &batch(vec![(a, SnapshotWrite::Whole(bytes(1)))]))
            .await
            .unwrap();

        // `b`'s whole goes with the batch that `c`'s frame has refused.
        let refused = batch(vec![
            (b, SnapshotWrite::Whole(bytes(2))),
            (c, SnapshotWrite::Append(bytes(3))),
        ]);
        let error = store.save_batch(0, &refused).await.unwrap_err();
        assert!(matches!(error, StoreError::NothingToAppendTo { id } if id == c));
        let error = store
            .save_batch(0, &batch(vec![(b, SnapshotWrite::Append(bytes(4)))]))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NothingToAppendTo { id } if id == b));

        drop(store);
        let reopened = LocalStore::open(dir.path()).unwrap();
        reopened
            .save_batch(0, &batch(vec![(a, SnapshotWrite::Append(bytes(5)))]))
            .await
            .unwrap();
        let restored = reopened.load_shard(0).await.unwrap().incidents;
        assert_eq!(restored, vec![(format!("shard-0/{a}"), vec![1, 5])]);
    }

    #[tokio::test]
    async fn appends_change_frames_and_moves_archived_and_quarantined_incidents_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        incidentd_actors::ports::store_check::check_change_frames(&store, 0).await;

        let (a, b) = (
            IncidentId::new(Timestamp(10)),
            IncidentId::new(Timestamp(11)),
        );
        let frame = |byte: u8| Arc::new(vec![byte]);
        let batch = SnapshotBatch {
            upserts: vec![
                (a, SnapshotWrite::Whole(frame(1))),
                (b, SnapshotWrite::Whole(frame(2))),
            ],
            ..SnapshotBatch::default()
        };
        store.save_batch(1, &batch).await.unwrap();
        let batch = SnapshotBatch {
            upserts: vec![
                (a, SnapshotWrite::Append(frame(3))),
                (b, SnapshotWrite::Append(frame(4))),
            ],
            ..SnapshotBatch::default()
        };
        store.save_batch(1, &batch).await.unwrap();
        let archive = SnapshotBatch {
            archived: vec![(a, frame(9))],
            ..SnapshotBatch::default()
        };
        store.save_batch(1, &archive).await.unwrap();
        let key = format!("shard-1/{b}");
        store.quarantine(1, &key, "test").await.unwrap();

        let quarantined = store.read_table(QUARANTINE).unwrap();
        let kept = quarantined.get((1, key.as_str())).unwrap().unwrap();
        assert_eq!(kept.value(), [2, 4], "the whole and its frame");
        drop(store);
        let reopened = LocalStore::open(dir.path()).unwrap();
        assert!(reopened.load_shard(1).await.unwrap().incidents.is_empty());
        let error = reopened
            .save_batch(
                1,
                &SnapshotBatch {
                    upserts: vec![(a, SnapshotWrite::Append(frame(5)))],
                    ..SnapshotBatch::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NothingToAppendTo { id } if id == a));
    }

    /// Whole writes make older bytes obsolete; the log drops its oldest
    /// segments as commits go on, so it stays within twice the current
    /// bytes plus a segment, hands the archived incidents it drops to the
    /// archive table, deletes the dropped segments, and a restore reads each
    /// incident's frames in order.
    #[tokio::test]
    async fn the_log_keeps_about_its_current_bytes_and_restores_frames_in_order() {
        const SEGMENT: u64 = 4096;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open_with_segments(dir.path(), SEGMENT).unwrap();
        let ids: Vec<IncidentId> = (0..200).map(|n| IncidentId::new(Timestamp(n))).collect();
        // What a restore must read per incident: its whole and frames since.
        let mut expected: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        let mut archived = 0;
        for commit in 0..120u32 {
            let mut batch = SnapshotBatch::default();
            for (n, id) in ids.iter().enumerate() {
                let Some(bytes) = &mut expected[n] else {
                    if commit > 0 {
                        continue; // archived
                    }
                    expected[n] = Some(vec![0, n as u8]);
                    batch
                        .upserts
                        .push((*id, SnapshotWrite::Whole(Arc::new(vec![0, n as u8]))));
                    continue;
                };
                // Commit 60 archives one in four; the others are written
                // in 3 of every 4 commits, one in five of those whole, at
                // different commits for each incident.
                if commit == 60 && n % 4 == 0 {
                    batch.archived.push((*id, Arc::new(bytes.clone())));
                    expected[n] = None;
                    archived += 1;
                } else if (n as u32 + commit) % 4 != 0 {
                    let byte = vec![commit as u8, n as u8];
                    if (n as u32 + commit) % 5 == 0 {
                        *bytes = byte.clone();
                        batch
                            .upserts
                            .push((*id, SnapshotWrite::Whole(Arc::new(byte))));
                    } else {
                        bytes.extend_from_slice(&byte);
                        batch
                            .upserts
                            .push((*id, SnapshotWrite::Append(Arc::new(byte))));
                    }
                }
            }
            store.save_batch(0, &batch).await.unwrap();
            // Each op is 2 bytes here, plus its overhead in the log.
            let current: u64 = expected
                .iter()
                .flatten()
                .map(|bytes| bytes.len() as u64 / 2 * (2 + OP_OVERHEAD))
                .sum();
            let in_log = store.with_log(0, |log| Ok(log.bytes())).unwrap();
            let bound = 2 * current + 2 * SEGMENT;
            assert!(
                in_log <= bound,
                "commit {commit}: {in_log} bytes in the log, {current} of them current"
            );
        }
        assert_eq!(store.archived_count().unwrap(), archived);
        let in_log = store.with_log(0, |log| Ok(log.bytes())).unwrap();
        // Dropping the store waits for the dropped segments' deletes.
        drop(store);
        let on_disk = log_bytes(&dir.path().join("live-log/shard-0"));
        assert_eq!(on_disk, in_log, "only the log's segments are left");
        let reopened = LocalStore::open_with_segments(dir.path(), SEGMENT).unwrap();
        let restored: BTreeMap<String, Vec<u8>> = reopened
            .load_shard(0)
            .await
            .unwrap()
            .incidents
            .into_iter()
            .collect();
        assert_eq!(restored.len(), ids.len() - archived as usize);
        for (id, bytes) in ids.iter().zip(&expected) {
            assert_eq!(restored.get(&format!("shard-0/{id}")), bytes.as_ref());
        }
    }

    fn log_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[tokio::test]
    async fn saves_restores_and_archives_per_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            IncidentId::new(Timestamp(1)),
            IncidentId::new(Timestamp(2)),
            IncidentId::new(Timestamp(3)),
        );
        {
            let store = LocalStore::open(dir.path()).unwrap();
            let batch = SnapshotBatch {
                upserts: vec![
                    (a, SnapshotWrite::Whole(Arc::new(vec![1]))),
                    (b, SnapshotWrite::Whole(Arc::new(vec![2]))),
                ],
                offsets: BTreeMap::from([("alerts/0".to_string(), 41)]),
                ..SnapshotBatch::default()
            };
            store.save_batch(0, &batch).await.unwrap();
            store
                .save_batch(
                    1,
                    &SnapshotBatch {
                        upserts: vec![(c, SnapshotWrite::Whole(Arc::new(vec![3])))],
                        ..SnapshotBatch::default()
                    },
                )
                .await
                .unwrap();
            store
                .save_batch(
                    0,
                    &SnapshotBatch {
                        archived: vec![(a, Arc::new(vec![9]))],
                        offsets: BTreeMap::from([("alerts/0".to_string(), 42)]),
                        ..SnapshotBatch::default()
                    },
                )
                .await
                .unwrap();
        }
        let store = LocalStore::open(dir.path()).unwrap();
        let zero = store.load_shard(0).await.unwrap();
        assert_eq!(zero.incidents, vec![(format!("shard-0/{b}"), vec![2])]);
        assert_eq!(zero.offsets.get("alerts/0"), Some(&42));
        let one = store.load_shard(1).await.unwrap();
        assert_eq!(one.incidents, vec![(format!("shard-1/{c}"), vec![3])]);
        assert!(one.offsets.is_empty());
    }
}
