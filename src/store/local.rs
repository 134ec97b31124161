use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use incidentd_actors::ports::{
    ShardSnapshot, SnapshotBatch, SnapshotStore, SnapshotWrite, StoreError,
};
use redb::{
    Database, Key, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};

/// Live incidents: (shard, incident id) -> whole encoded incident.
const LIVE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("live_incidents");
/// The change frames appended to a live incident since its whole encoding
/// was written, one row each: (shard, incident id, frame number) -> frame.
/// A row per frame makes an append cost about the frame; rewriting the
/// incident's value would cost more than writing it whole.
const CHANGES: TableDefinition<(u32, &str, u64), &[u8]> =
    TableDefinition::new("live_incident_changes");
/// Per shard, the first frame number the next commit may use. Numbers grow
/// with every commit, so an incident's frames sort in the order they were
/// appended without looking up its last one.
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
}

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
        for table in [LIVE, ARCHIVE, QUARANTINE] {
            txn.open_table(table)
                .map_err(|e| unavailable("create table", e))?;
        }
        txn.open_table(CHANGES)
            .map_err(|e| unavailable("create table", e))?;
        txn.open_table(FRAME_NUMBERS)
            .map_err(|e| unavailable("create table", e))?;
        txn.open_table(OFFSETS)
            .map_err(|e| unavailable("create table", e))?;
        super::local_subscriptions::create_tables(&txn)?;
        super::local_pagerduty_keys::create_tables(&txn)?;
        txn.commit().map_err(|e| unavailable("commit", e))?;
        Ok(LocalStore { db: Arc::new(db) })
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
        let changes = txn
            .open_table(CHANGES)
            .map_err(|e| unavailable("open table", e))?;
        let mut frames: HashMap<String, Vec<u8>> = HashMap::new();
        for entry in changes
            .range((shard, "", 0)..(shard + 1, "", 0))
            .map_err(|e| unavailable("read", e))?
        {
            let (key, frame) = entry.map_err(|e| unavailable("read", e))?;
            let (_, id, _) = key.value();
            frames
                .entry(id.to_string())
                .or_default()
                .extend_from_slice(frame.value());
        }
        let mut snapshot = ShardSnapshot::default();
        for entry in live
            .range((shard, "")..(shard + 1, ""))
            .map_err(|e| unavailable("read", e))?
        {
            let (key, value) = entry.map_err(|e| unavailable("read", e))?;
            let (_, id) = key.value();
            let mut bytes = value.value().to_vec();
            bytes.extend_from_slice(frames.get(id).map_or(&[], Vec::as_slice));
            snapshot
                .incidents
                .push((format!("shard-{shard}/{id}"), bytes));
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
            let mut changes = txn
                .open_table(CHANGES)
                .map_err(|e| unavailable("open table", e))?;
            let mut frame_numbers = txn
                .open_table(FRAME_NUMBERS)
                .map_err(|e| unavailable("open table", e))?;
            // Read when the batch has its first frame; entry i of the batch
            // numbers its frame first + i.
            let mut first_number = None;
            // An error drops the transaction uncommitted: nothing is written.
            for (i, (incident, write)) in batch.upserts.iter().enumerate() {
                let id = incident.to_string();
                let key = (shard, id.as_str());
                match write {
                    SnapshotWrite::Whole(bytes) => {
                        live.insert(key, bytes.as_slice())
                            .map_err(|e| unavailable("write", e))?;
                        remove_changes(&mut changes, shard, &id)?;
                    }
                    SnapshotWrite::Append(frame) => {
                        let stored = live.get(key).map_err(|e| unavailable("read", e))?;
                        if stored.is_none() {
                            return Err(StoreError::NothingToAppendTo { id: *incident });
                        }
                        let first = match first_number {
                            Some(first) => first,
                            None => *first_number.insert(first_frame_number(
                                &frame_numbers,
                                &changes,
                                shard,
                            )?),
                        };
                        changes
                            .insert((shard, id.as_str(), first + i as u64), frame.as_slice())
                            .map_err(|e| unavailable("write", e))?;
                    }
                }
            }
            if let Some(first) = first_number {
                frame_numbers
                    .insert(shard, first + batch.upserts.len() as u64)
                    .map_err(|e| unavailable("write", e))?;
            }
            for (id, bytes) in &batch.archived {
                let id = id.to_string();
                live.remove((shard, id.as_str()))
                    .map_err(|e| unavailable("write", e))?;
                remove_changes(&mut changes, shard, &id)?;
                archive
                    .insert((shard, id.as_str()), bytes.as_slice())
                    .map_err(|e| unavailable("write", e))?;
            }
            for (source, offset) in &batch.offsets {
                offsets
                    .insert((shard, source.as_str()), *offset)
                    .map_err(|e| unavailable("write", e))?;
            }
        }
        txn.commit().map_err(|e| unavailable("commit", e))
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
            let whole = live
                .remove((shard, id))
                .map_err(|e| unavailable("write", e))?
                .map(|v| v.value().to_vec());
            if let Some(mut bytes) = whole {
                // What restore failed to decode: the whole and its frames.
                let mut changes = txn
                    .open_table(CHANGES)
                    .map_err(|e| unavailable("open table", e))?;
                for frame in changes
                    .extract_from_if(frames_of(shard, id), |_, _| true)
                    .map_err(|e| unavailable("write", e))?
                {
                    let (_, frame) = frame.map_err(|e| unavailable("write", e))?;
                    bytes.extend_from_slice(frame.value());
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
        let changes = self.read_table(CHANGES)?;
        changes.len().map_err(|e| unavailable("read", e))
    }
}

/// The first frame number this commit of `shard` may use. A store written
/// before `FRAME_NUMBERS` existed numbered each incident's frames from 0:
/// its first commit since starts after the highest number stored.
fn first_frame_number(
    frame_numbers: &Table<u32, u64>,
    changes: &Table<(u32, &str, u64), &[u8]>,
    shard: u32,
) -> Result<u64, StoreError> {
    if let Some(first) = frame_numbers
        .get(shard)
        .map_err(|e| unavailable("read", e))?
    {
        return Ok(first.value());
    }
    let mut first = 0;
    for row in changes
        .range((shard, "", 0)..(shard + 1, "", 0))
        .map_err(|e| unavailable("read", e))?
    {
        let (key, _) = row.map_err(|e| unavailable("read", e))?;
        first = first.max(key.value().2 + 1);
    }
    Ok(first)
}

/// The keys of incident `id`'s change frames in `CHANGES`.
fn frames_of(shard: u32, id: &str) -> RangeInclusive<(u32, &str, u64)> {
    (shard, id, 0)..=(shard, id, u64::MAX)
}

/// Deletes the change frames stored for incident `id`. Key by key, not
/// with `retain_in`: that copies the leaf again for every row it deletes
/// (it must not change the tree it iterates over), while `remove` changes
/// in place a page this transaction already copied.
fn remove_changes(
    changes: &mut Table<(u32, &str, u64), &[u8]>,
    shard: u32,
    id: &str,
) -> Result<(), StoreError> {
    let numbers = changes
        .range(frames_of(shard, id))
        .map_err(|e| unavailable("read", e))?
        .map(|row| row.map(|(key, _)| key.value().2))
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|e| unavailable("read", e))?;
    for number in numbers {
        changes
            .remove((shard, id, number))
            .map_err(|e| unavailable("write", e))?;
    }
    Ok(())
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
    async fn appends_change_frames_and_refuses_them_without_a_stored_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        incidentd_actors::ports::store_check::check_change_frames(&store, 0).await;

        // Archiving and quarantine delete an incident's frames with it.
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
        assert_eq!(store.change_frame_count().unwrap(), 0);
    }

    /// A store written before frame numbers were kept per shard numbered
    /// each incident's frames from 0; frames appended after the upgrade
    /// must come after those, not replace them.
    #[tokio::test]
    async fn frames_appended_after_frames_of_an_older_build_come_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let a = IncidentId::new(Timestamp(10));
        let id = a.to_string();
        let txn = store.write().unwrap();
        {
            let mut live = txn.open_table(LIVE).unwrap();
            live.insert((0, id.as_str()), [1u8].as_slice()).unwrap();
            let mut changes = txn.open_table(CHANGES).unwrap();
            for n in 0..3u8 {
                changes
                    .insert((0, id.as_str(), u64::from(n)), [10 + n].as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();

        for byte in [20, 21] {
            let batch = SnapshotBatch {
                upserts: vec![(a, SnapshotWrite::Append(Arc::new(vec![byte])))],
                ..SnapshotBatch::default()
            };
            store.save_batch(0, &batch).await.unwrap();
        }
        let restored = store.load_shard(0).await.unwrap();
        assert_eq!(
            restored.incidents,
            vec![(format!("shard-0/{a}"), vec![1, 10, 11, 12, 20, 21])]
        );
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
