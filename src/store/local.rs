use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use incidentd_actors::ports::{
    ShardSnapshot, SnapshotBatch, SnapshotStore, SnapshotWrite, StoreError,
};
use redb::{
    Database, Key, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};

/// Live incidents: (shard, incident id) -> (the number of its first own
/// change frame, whole encoding). Frames in `FRAME_LOG` numbered below it
/// were appended before this whole was written: they are obsolete.
pub(super) const LIVE: TableDefinition<(u32, &str), (u64, &[u8])> =
    TableDefinition::new("live_incidents");
/// Every live incident's change frames in the order they were committed:
/// (shard, frame number) -> (incident id, frame). A commit appends its
/// frames at the end of the shard's range, so it writes about the pages the
/// frames fill; keyed by incident, each frame rewrote a page of its own
/// (about six times the bytes stored, measured). Obsolete frames are swept
/// out a few at every commit (`sweep_frames`).
const FRAME_LOG: TableDefinition<(u32, u64), (&str, &[u8])> =
    TableDefinition::new("change_frame_log");
/// Per shard, the first frame number the next commit may use.
const FRAME_NUMBERS: TableDefinition<u32, u64> = TableDefinition::new("change_frame_numbers");
/// Archived incidents, kept for post-mortems and analytics.
const ARCHIVE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("archived_incidents");
/// Entries the engine could not decode, moved aside: (shard, store key) -> bytes.
const QUARANTINE: TableDefinition<(u32, &str), &[u8]> =
    TableDefinition::new("quarantined_snapshots");
/// Highest applied offset per (shard, source).
const OFFSETS: TableDefinition<(u32, &str), i64> = TableDefinition::new("source_offsets");

/// The embedded snapshot store: one redb file in the data directory. Each
/// batch is one transaction, committed durably before the engine answers.
#[derive(Clone)]
pub struct LocalStore {
    pub(super) db: Arc<Database>,
    /// Per shard, the frame number the next sweep of its log starts from.
    sweep_from: Arc<Mutex<HashMap<u32, u64>>>,
}

/// Each commit sweeps this many frames of its shard's log beyond twice the
/// frames it appends: the log is swept faster than it grows, so it holds
/// at most about twice the frames that are still current.
const SWEEP_EXTRA: usize = 64;

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("local store: {what}: {e}"))
}

impl LocalStore {
    /// Opens (or creates) `incidentd.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<LocalStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| unavailable(&format!("create {}", data_dir.display()), e))?;
        let path = data_dir.join("incidentd.redb");
        let db = Database::create(&path)
            .map_err(|e| unavailable(&format!("open {}", path.display()), e))?;
        let txn = db.begin_write().map_err(|e| unavailable("begin", e))?;
        let migrated = super::local_migration::migrate(&txn)?;
        if migrated > 0 {
            tracing::info!(
                incidents = migrated,
                path = %path.display(),
                "moved the local store's live incidents to the frame log layout"
            );
        }
        txn.open_table(LIVE)
            .map_err(|e| unavailable("create table", e))?;
        for table in [ARCHIVE, QUARANTINE] {
            txn.open_table(table)
                .map_err(|e| unavailable("create table", e))?;
        }
        txn.open_table(FRAME_LOG)
            .map_err(|e| unavailable("create table", e))?;
        txn.open_table(FRAME_NUMBERS)
            .map_err(|e| unavailable("create table", e))?;
        txn.open_table(OFFSETS)
            .map_err(|e| unavailable("create table", e))?;
        super::local_subscriptions::create_tables(&txn)?;
        super::local_pagerduty_keys::create_tables(&txn)?;
        txn.commit().map_err(|e| unavailable("commit", e))?;
        Ok(LocalStore {
            db: Arc::new(db),
            sweep_from: Arc::default(),
        })
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

    fn load_blocking(&self, shard: u32) -> Result<ShardSnapshot, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| unavailable("begin read", e))?;
        let live = txn
            .open_table(LIVE)
            .map_err(|e| unavailable("open table", e))?;
        let log = txn
            .open_table(FRAME_LOG)
            .map_err(|e| unavailable("open table", e))?;
        let mut snapshot = ShardSnapshot::default();
        // Per incident: its entry in `snapshot.incidents` and first own frame.
        let mut found: HashMap<String, (usize, u64)> = HashMap::new();
        for entry in live
            .range((shard, "")..(shard + 1, ""))
            .map_err(|e| unavailable("read", e))?
        {
            let (key, value) = entry.map_err(|e| unavailable("read", e))?;
            let (_, id) = key.value();
            let (first_frame, whole) = value.value();
            found.insert(id.to_string(), (snapshot.incidents.len(), first_frame));
            snapshot
                .incidents
                .push((format!("shard-{shard}/{id}"), whole.to_vec()));
        }
        for entry in log
            .range(frames_from(shard, 0))
            .map_err(|e| unavailable("read", e))?
        {
            let (key, value) = entry.map_err(|e| unavailable("read", e))?;
            let (id, frame) = value.value();
            match found.get(id) {
                Some(&(at, first_frame)) if key.value().1 >= first_frame => {
                    snapshot.incidents[at].1.extend_from_slice(frame)
                }
                _ => {} // obsolete, not swept yet
            }
        }
        let offsets = txn
            .open_table(OFFSETS)
            .map_err(|e| unavailable("open table", e))?;
        for entry in offsets
            .range((shard, "")..(shard + 1, ""))
            .map_err(|e| unavailable("read", e))?
        {
            let (key, value) = entry.map_err(|e| unavailable("read", e))?;
            snapshot
                .offsets
                .insert(key.value().1.to_string(), value.value());
        }
        Ok(snapshot)
    }

    fn save_blocking(&self, shard: u32, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| unavailable("begin write", e))?;
        let sweep_from = self.sweep_start(shard);
        let sweep_next;
        {
            let mut live = txn
                .open_table(LIVE)
                .map_err(|e| unavailable("open table", e))?;
            let mut archive = txn
                .open_table(ARCHIVE)
                .map_err(|e| unavailable("open table", e))?;
            let mut offsets = txn
                .open_table(OFFSETS)
                .map_err(|e| unavailable("open table", e))?;
            let mut log = txn
                .open_table(FRAME_LOG)
                .map_err(|e| unavailable("open table", e))?;
            let mut frame_numbers = txn
                .open_table(FRAME_NUMBERS)
                .map_err(|e| unavailable("open table", e))?;
            // Entry i of the batch takes number first + i: a frame as its key
            // in the log, a whole write as the first frame that is its own.
            let first = match frame_numbers
                .get(shard)
                .map_err(|e| unavailable("read", e))?
            {
                Some(first) => first.value(),
                None => 0,
            };
            let mut appended = 0;
            // An error drops the transaction uncommitted: nothing is written.
            for (i, (incident, write)) in batch.upserts.iter().enumerate() {
                let number = first + i as u64;
                let id = incident.to_string();
                let key = (shard, id.as_str());
                match write {
                    SnapshotWrite::Whole(bytes) => {
                        live.insert(key, (number, bytes.as_slice()))
                            .map_err(|e| unavailable("write", e))?;
                    }
                    SnapshotWrite::Append(frame) => {
                        let stored = live.get(key).map_err(|e| unavailable("read", e))?;
                        if stored.is_none() {
                            return Err(StoreError::NothingToAppendTo { id: *incident });
                        }
                        log.insert((shard, number), (id.as_str(), frame.as_slice()))
                            .map_err(|e| unavailable("write", e))?;
                        appended += 1;
                    }
                }
            }
            if !batch.upserts.is_empty() {
                frame_numbers
                    .insert(shard, first + batch.upserts.len() as u64)
                    .map_err(|e| unavailable("write", e))?;
            }
            for (id, bytes) in &batch.archived {
                let id = id.to_string();
                live.remove((shard, id.as_str()))
                    .map_err(|e| unavailable("write", e))?;
                archive
                    .insert((shard, id.as_str()), bytes.as_slice())
                    .map_err(|e| unavailable("write", e))?;
            }
            for (source, offset) in &batch.offsets {
                offsets
                    .insert((shard, source.as_str()), *offset)
                    .map_err(|e| unavailable("write", e))?;
            }
            sweep_next = sweep_frames(
                &live,
                &mut log,
                shard,
                sweep_from,
                2 * appended + SWEEP_EXTRA,
            )?;
        }
        txn.commit().map_err(|e| unavailable("commit", e))?;
        self.sweep_from
            .lock()
            .expect("sweep positions")
            .insert(shard, sweep_next);
        Ok(())
    }

    fn sweep_start(&self, shard: u32) -> u64 {
        let positions = self.sweep_from.lock().expect("sweep positions");
        positions.get(&shard).copied().unwrap_or(0)
    }

    fn quarantine_blocking(&self, shard: u32, key: &str) -> Result<(), StoreError> {
        let id = key.rsplit('/').next().unwrap_or(key);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| unavailable("begin write", e))?;
        {
            let mut live = txn
                .open_table(LIVE)
                .map_err(|e| unavailable("open table", e))?;
            let removed = live
                .remove((shard, id))
                .map_err(|e| unavailable("write", e))?
                .map(|v| {
                    let (first_frame, whole) = v.value();
                    (first_frame, whole.to_vec())
                });
            if let Some((first_frame, mut bytes)) = removed {
                // What restore failed to decode: the whole and its frames,
                // which are obsolete now and left to the sweep.
                let log = txn
                    .open_table(FRAME_LOG)
                    .map_err(|e| unavailable("open table", e))?;
                for entry in log
                    .range(frames_from(shard, first_frame))
                    .map_err(|e| unavailable("read", e))?
                {
                    let (_, value) = entry.map_err(|e| unavailable("read", e))?;
                    let (frame_of, frame) = value.value();
                    if frame_of == id {
                        bytes.extend_from_slice(frame);
                    }
                }
                let mut quarantine = txn
                    .open_table(QUARANTINE)
                    .map_err(|e| unavailable("open table", e))?;
                quarantine
                    .insert((shard, key), bytes.as_slice())
                    .map_err(|e| unavailable("write", e))?;
            }
        }
        txn.commit().map_err(|e| unavailable("commit", e))
    }

    #[cfg(test)]
    fn archived_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let archive = self.read_table(ARCHIVE)?;
        archive.len().map_err(|e| unavailable("read", e))
    }

    #[cfg(test)]
    fn change_frame_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let log = self.read_table(FRAME_LOG)?;
        log.len().map_err(|e| unavailable("read", e))
    }
}

/// The keys of `shard`'s change frames in `FRAME_LOG` numbered `from` on.
fn frames_from(shard: u32, from: u64) -> RangeInclusive<(u32, u64)> {
    (shard, from)..=(shard, u64::MAX)
}

/// Looks at up to `budget` frames of `shard`'s log from number `from` on
/// and deletes those that are obsolete: their incident left the live set,
/// or was written whole since. Returns where the next sweep starts: after
/// the last frame looked at, or 0 once the end of the log was reached.
fn sweep_frames(
    live: &Table<(u32, &str), (u64, &[u8])>,
    log: &mut Table<(u32, u64), (&str, &[u8])>,
    shard: u32,
    from: u64,
    budget: usize,
) -> Result<u64, StoreError> {
    let mut obsolete = Vec::new();
    let mut next = 0;
    for (looked_at, entry) in log
        .range(frames_from(shard, from))
        .map_err(|e| unavailable("read", e))?
        .enumerate()
    {
        let (key, value) = entry.map_err(|e| unavailable("read", e))?;
        let number = key.value().1;
        if looked_at == budget {
            next = number;
            break;
        }
        let (id, _) = value.value();
        let current = live
            .get((shard, id))
            .map_err(|e| unavailable("read", e))?
            .is_some_and(|stored| stored.value().0 <= number);
        if !current {
            obsolete.push(number);
        }
    }
    // Key by key: `retain_in` copies the leaf again for every row it
    // deletes, while `remove` changes a page this transaction already copied.
    for number in obsolete {
        log.remove((shard, number))
            .map_err(|e| unavailable("write", e))?;
    }
    Ok(next)
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
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.load_blocking(shard as u32))
            .await
            .map_err(|e| unavailable("load task", e))?
    }

    async fn save_batch(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let store = self.clone();
        let batch = batch.clone();
        tokio::task::spawn_blocking(move || store.save_blocking(shard as u32, &batch))
            .await
            .map_err(|e| unavailable("save task", e))?
    }

    async fn quarantine(&self, shard: usize, key: &str, reason: &str) -> Result<(), StoreError> {
        tracing::warn!(shard, key, reason, "moving an undecodable snapshot aside");
        let store = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || store.quarantine_blocking(shard as u32, &key))
            .await
            .map_err(|e| unavailable("quarantine task", e))?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use incidentd_actors::model::{IncidentId, Timestamp};

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
    async fn appends_change_frames_and_refuses_them_without_a_stored_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        incidentd_actors::ports::store_check::check_change_frames(&store, 0).await;

        // Archiving and quarantine make an incident's frames obsolete.
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
        assert_eq!(store.change_frame_count().unwrap(), 2);
        let archive = SnapshotBatch {
            archived: vec![(a, frame(9))],
            ..SnapshotBatch::default()
        };
        store.save_batch(1, &archive).await.unwrap();
        store
            .quarantine(1, &format!("shard-1/{b}"), "test")
            .await
            .unwrap();
        // Their frames are obsolete now; the next commit sweeps them out.
        store
            .save_batch(1, &SnapshotBatch::default())
            .await
            .unwrap();
        assert_eq!(store.change_frame_count().unwrap(), 0);
    }

    /// Frames made obsolete by whole writes are swept out as commits go
    /// on, so the log stays within a bound of the frames still current,
    /// and a restore reads each incident's current frames in order.
    #[tokio::test]
    async fn the_frame_log_keeps_about_the_current_frames_and_restores_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let ids: Vec<IncidentId> = (0..200).map(|n| IncidentId::new(Timestamp(n))).collect();
        // What a restore must read per incident: its whole and frames since.
        let mut expected: Vec<Vec<u8>> = vec![Vec::new(); ids.len()];
        let mut most_current = 0;
        for commit in 0..120u32 {
            let upserts = ids
                .iter()
                .enumerate()
                // The first commit writes every incident whole; later ones
                // write 3 of every 4, one in five of those whole, at
                // different commits for each incident.
                .filter(|(n, _)| commit == 0 || (*n as u32 + commit) % 4 != 0)
                .map(|(n, id)| {
                    let byte = [commit as u8, n as u8];
                    if commit == 0 || (n as u32 + commit) % 5 == 0 {
                        expected[n] = byte.to_vec();
                        (*id, SnapshotWrite::Whole(Arc::new(byte.to_vec())))
                    } else {
                        expected[n].extend_from_slice(&byte);
                        (*id, SnapshotWrite::Append(Arc::new(byte.to_vec())))
                    }
                })
                .collect();
            let batch = SnapshotBatch {
                upserts,
                ..SnapshotBatch::default()
            };
            store.save_batch(0, &batch).await.unwrap();
            let current: usize = expected.iter().map(|bytes| bytes.len() / 2 - 1).sum();
            most_current = most_current.max(current);
            let rows = store.change_frame_count().unwrap() as usize;
            assert!(
                rows <= 2 * most_current + 2 * ids.len() + SWEEP_EXTRA,
                "commit {commit}: {rows} frames in the log, {current} of them current"
            );
        }
        let restored: BTreeMap<String, Vec<u8>> = store
            .load_shard(0)
            .await
            .unwrap()
            .incidents
            .into_iter()
            .collect();
        for (id, bytes) in ids.iter().zip(&expected) {
            assert_eq!(restored.get(&format!("shard-0/{id}")), Some(bytes));
        }
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
                        ..SnapshotBatch::default()
                    },
                )
                .await
                .unwrap();
        }
        let store = LocalStore::open(dir.path()).unwrap();
        let zero = store.load_shard(0).await.unwrap();
        assert_eq!(zero.incidents, vec![(format!("shard-0/{b}"), vec![2])]);
        assert_eq!(zero.offsets.get("alerts/0"), Some(&41));
        assert_eq!(store.load_shard(1).await.unwrap().incidents.len(), 1);
        assert_eq!(store.archived_count().unwrap(), 1);

        store
            .quarantine(0, &format!("shard-0/{b}"), "cannot decode")
            .await
            .unwrap();
        assert!(
            store.load_shard(0).await.unwrap().incidents.is_empty(),
            "moved out of the live set"
        );
    }
}
