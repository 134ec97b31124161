//! Brings a local store written by an older build to the current layout,
//! where live incidents, their frames and source offsets are in one log per
//! shard (`local_log`) rather than in redb tables.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::local::{unavailable, LocalStore};
use incidentd_actors::model::IncidentId;
use incidentd_actors::ports::{SnapshotBatch, SnapshotWrite, StoreError};

/// Before 2026-11-28: whole encodings without a frame number...
const OLD_LIVE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("live_incidents");
/// ...and their change frames keyed by incident, numbered per incident.
const OLD_CHANGES: TableDefinition<(u32, &str, u64), &[u8]> =
    TableDefinition::new("live_incident_changes");
/// From 2026-11-28: whole encodings with the number of their first own
/// frame...
const FRAME_LIVE: TableDefinition<(u32, &str), (u64, &[u8])> =
    TableDefinition::new("live_incidents");
/// ...their frames in one log per shard, numbered per shard...
const FRAME_LOG: TableDefinition<(u32, u64), (&str, &[u8])> =
    TableDefinition::new("change_frame_log");
/// ...the next frame number per shard...
const FRAME_NUMBERS: TableDefinition<u32, u64> = TableDefinition::new("change_frame_numbers");
/// ...and, in both, the highest applied offset per (shard, source).
const OFFSETS: TableDefinition<(u32, &str), i64> = TableDefinition::new("source_offsets");
/// What takes `live_incidents`' name once its incidents moved: a type both
/// older layouts fail to open, so an older build refuses the store rather
/// than find it empty.
const MOVED: TableDefinition<&str, &str> = TableDefinition::new("live_incidents");

/// Incidents in a shard log's commit when moving them: a bound on the
/// record's size.
const MOVED_PER_COMMIT: usize = 10_000;

/// Per shard: each incident's current bytes and the sources' offsets.
type Moving = BTreeMap<u32, (Vec<(IncidentId, Vec<u8>)>, BTreeMap<String, i64>)>;

/// Moves the live incidents and offsets of an older layout into `store`'s
/// shard logs (each incident's frames folded into its whole encoding, which
/// is how a restore reads them anyway), then drops the old tables in
/// `txn`. Returns how many incidents were moved; 0 for a current store.
/// A crash before `txn` commits moves them again on the next open, which
/// writes the same wholes once more.
pub(super) fn migrate(txn: &WriteTransaction, store: &LocalStore) -> Result<u64, StoreError> {
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(|e| unavailable("list tables", e))?
        .map(|table| table.name().to_string())
        .collect();
    let has = |table: &str| tables.iter().any(|name| name == table);
    let mut moving = Moving::new();
    if has(OLD_CHANGES.name()) {
        read_per_incident_frames(txn, &mut moving)?;
        txn.delete_table(OLD_CHANGES)
            .map_err(|e| unavailable("delete table", e))?;
    } else if has(FRAME_LOG.name()) {
        read_frame_log(txn, &mut moving)?;
        txn.delete_table(FRAME_LOG)
            .map_err(|e| unavailable("delete table", e))?;
        txn.delete_table(FRAME_NUMBERS)
            .map_err(|e| unavailable("delete table", e))?;
    } else {
        txn.open_table(MOVED)
            .map_err(|e| unavailable("create table", e))?;
        return Ok(0);
    }
    if has(OFFSETS.name()) {
        let offsets = txn
            .open_table(OFFSETS)
            .map_err(|e| unavailable("open table", e))?;
        for row in offsets.iter().map_err(|e| unavailable("read", e))? {
            let (key, offset) = row.map_err(|e| unavailable("read", e))?;
            let (shard, source) = key.value();
            let entry = moving.entry(shard).or_default();
            entry.1.insert(source.to_string(), offset.value());
        }
        drop(offsets);
        txn.delete_table(OFFSETS)
            .map_err(|e| unavailable("delete table", e))?;
    }
    let mut moved = 0;
    for (shard, (incidents, offsets)) in moving {
        moved += incidents.len() as u64;
        let wholes: Vec<(IncidentId, SnapshotWrite)> = incidents
            .into_iter()
            .map(|(id, bytes)| (id, SnapshotWrite::Whole(Arc::new(bytes))))
            .collect();
        // Copying a chunk copies its `Arc`s, not the bytes.
        let mut batches: Vec<SnapshotBatch> = wholes
            .chunks(MOVED_PER_COMMIT)
            .map(|chunk| SnapshotBatch {
                upserts: chunk.to_vec(),
                ..SnapshotBatch::default()
            })
            .collect();
        batches.push(SnapshotBatch {
            offsets,
            ..SnapshotBatch::default()
        });
        store.with_log(shard, |log| {
            batches.iter().try_for_each(|batch| log.commit(batch))
        })?;
    }
    // Both old layouts named their live incidents `live_incidents`.
    txn.delete_table(OLD_LIVE)
        .map_err(|e| unavailable("delete table", e))?;
    txn.open_table(MOVED)
        .map_err(|e| unavailable("create table", e))?
        .insert("moved_to", "live-log")
        .map_err(|e| unavailable("write", e))?;
    Ok(moved)
}

fn parse_id(id: &str) -> Result<IncidentId, StoreError> {
    id.parse()
        .map(IncidentId)
        .map_err(|e| unavailable(&format!("move incident {id}"), e))
}

/// The layout before 2026-11-28: frames keyed by incident.
fn read_per_incident_frames(txn: &WriteTransaction, moving: &mut Moving) -> Result<(), StoreError> {
    let old = txn
        .open_table(OLD_LIVE)
        .map_err(|e| unavailable("open table", e))?;
    let changes = txn
        .open_table(OLD_CHANGES)
        .map_err(|e| unavailable("open table", e))?;
    for row in old.iter().map_err(|e| unavailable("read", e))? {
        let (key, whole) = row.map_err(|e| unavailable("read", e))?;
        let (shard, id) = key.value();
        let mut bytes = whole.value().to_vec();
        for frame in changes
            .range((shard, id, 0)..=(shard, id, u64::MAX))
            .map_err(|e| unavailable("read", e))?
        {
            let (_, frame) = frame.map_err(|e| unavailable("read", e))?;
            bytes.extend_from_slice(frame.value());
        }
        moving
            .entry(shard)
            .or_default()
            .0
            .push((parse_id(id)?, bytes));
    }
    Ok(())
}

/// The layout from 2026-11-28: one frame log per shard, where frames
/// numbered below their incident's first own frame are obsolete.
fn read_frame_log(txn: &WriteTransaction, moving: &mut Moving) -> Result<(), StoreError> {
    let live = txn
        .open_table(FRAME_LIVE)
        .map_err(|e| unavailable("open table", e))?;
    let log = txn
        .open_table(FRAME_LOG)
        .map_err(|e| unavailable("open table", e))?;
    // Per (shard, incident): where it is in `moving` and its first own frame.
    let mut found: HashMap<(u32, String), (usize, u64)> = HashMap::new();
    for row in live.iter().map_err(|e| unavailable("read", e))? {
        let (key, value) = row.map_err(|e| unavailable("read", e))?;
        let (shard, id) = key.value();
        let (first_frame, whole) = value.value();
        let incidents = &mut moving.entry(shard).or_default().0;
        found.insert((shard, id.to_string()), (incidents.len(), first_frame));
        incidents.push((parse_id(id)?, whole.to_vec()));
    }
    for row in log.iter().map_err(|e| unavailable("read", e))? {
        let (key, value) = row.map_err(|e| unavailable("read", e))?;
        let (shard, number) = key.value();
        let (id, frame) = value.value();
        if let Some(&(at, first_frame)) = found.get(&(shard, id.to_string())) {
            if number >= first_frame {
                moving.get_mut(&shard).expect("found above").0[at]
                    .1
                    .extend_from_slice(frame);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use incidentd_actors::model::{IncidentId, Timestamp};
    use incidentd_actors::ports::{SnapshotBatch, SnapshotStore, SnapshotWrite};

    use redb::ReadableDatabase;

    use super::*;
    use crate::store::LocalStore;

    /// A store of the old layout, as an older build left it: `a` with two
    /// frames, `b` without, in two shards.
    fn write_old_layout(path: &std::path::Path, a: IncidentId, b: IncidentId) {
        let db = redb::Database::create(path.join("incidentd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut live = txn.open_table(OLD_LIVE).unwrap();
            live.insert((0, a.to_string().as_str()), [1u8].as_slice())
                .unwrap();
            live.insert((1, b.to_string().as_str()), [5u8].as_slice())
                .unwrap();
            let mut changes = txn.open_table(OLD_CHANGES).unwrap();
            for n in 0..2u8 {
                changes
                    .insert(
                        (0, a.to_string().as_str(), u64::from(n)),
                        [2 + n].as_slice(),
                    )
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// A store of the frame log layout: `a` whole, then a frame, then
    /// whole again and one more frame; `b` with one frame; offsets.
    fn write_frame_layout(path: &std::path::Path, a: IncidentId, b: IncidentId) {
        let db = redb::Database::create(path.join("incidentd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let (a, b) = (a.to_string(), b.to_string());
            let mut live = txn.open_table(FRAME_LIVE).unwrap();
            live.insert((0, a.as_str()), (2, [3u8].as_slice())).unwrap();
            live.insert((2, b.as_str()), (0, [7u8].as_slice())).unwrap();
            let mut log = txn.open_table(FRAME_LOG).unwrap();
            log.insert((0, 1), (a.as_str(), [2u8].as_slice())).unwrap(); // obsolete
            log.insert((0, 3), (a.as_str(), [4u8].as_slice())).unwrap();
            log.insert((2, 0), (b.as_str(), [8u8].as_slice())).unwrap();
            let mut numbers = txn.open_table(FRAME_NUMBERS).unwrap();
            numbers.insert(0, 4).unwrap();
            numbers.insert(2, 1).unwrap();
            let mut offsets = txn.open_table(OFFSETS).unwrap();
            offsets.insert((2, "alerts/2"), 99).unwrap();
        }
        txn.commit().unwrap();
    }

    /// Older builds open `live_incidents` as their own layout; they must
    /// fail on a moved store rather than find it empty.
    #[test]
    fn older_layouts_cannot_open_a_moved_store() {
        let dir = tempfile::tempdir().unwrap();
        drop(LocalStore::open(dir.path()).unwrap());
        let db = redb::Database::create(dir.path().join("incidentd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let refused = txn.open_table(OLD_LIVE).map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, redb::TableError::TableTypeMismatch { .. }),
            "{refused}"
        );
        let refused = txn.open_table(FRAME_LIVE).map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, redb::TableError::TableTypeMismatch { .. }),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_store_of_the_frame_log_layout_keeps_current_frames_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (IncidentId::new(Timestamp(1)), IncidentId::new(Timestamp(2)));
        write_frame_layout(dir.path(), a, b);

        for _ in 0..2 {
            // The second open finds the store moved and reads the logs.
            let store = LocalStore::open(dir.path()).unwrap();
            let zero = store.load_shard(0).await.unwrap();
            assert_eq!(zero.incidents, vec![(format!("shard-0/{a}"), vec![3, 4])]);
            let two = store.load_shard(2).await.unwrap();
            assert_eq!(two.incidents, vec![(format!("shard-2/{b}"), vec![7, 8])]);
            assert_eq!(two.offsets.get("alerts/2"), Some(&99));
        }
        let db = redb::Database::create(dir.path().join("incidentd.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let tables: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|table| table.name().to_string())
            .collect();
        for gone in [FRAME_LOG.name(), FRAME_NUMBERS.name(), OFFSETS.name()] {
            assert!(
                !tables.iter().any(|name| name == gone),
                "{gone} in {tables:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_store_of_the_old_layout_keeps_every_incident_and_takes_new_frames_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (IncidentId::new(Timestamp(1)), IncidentId::new(Timestamp(2)));
        write_old_layout(dir.path(), a, b);

        let store = LocalStore::open(dir.path()).unwrap();
        let zero = store.load_shard(0).await.unwrap();
        assert_eq!(
            zero.incidents,
            vec![(format!("shard-0/{a}"), vec![1, 2, 3])]
        );
        let one = store.load_shard(1).await.unwrap();
        assert_eq!(one.incidents, vec![(format!("shard-1/{b}"), vec![5])]);

        let append = SnapshotBatch {
            upserts: vec![(a, SnapshotWrite::Append(Arc::new(vec![4])))],
            ..SnapshotBatch::default()
        };
        store.save_batch(0, &append).await.unwrap();
        drop(store);
        let reopened = LocalStore::open(dir.path()).unwrap();
        let zero = reopened.load_shard(0).await.unwrap();
        assert_eq!(
            zero.incidents,
            vec![(format!("shard-0/{a}"), vec![1, 2, 3, 4])],
            "migrated once, then read in the current layout"
        );
    }
}
