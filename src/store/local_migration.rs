//! Brings a local store written by an older build to the current layout.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::local::{unavailable, LIVE};
use incidentd_actors::ports::StoreError;

/// Before 2026-11-28: whole encodings without a frame number...
const OLD_LIVE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("live_incidents");
/// ...and their change frames keyed by incident, numbered per incident.
const OLD_CHANGES: TableDefinition<(u32, &str, u64), &[u8]> =
    TableDefinition::new("live_incident_changes");
/// Where the migrated incidents are written before taking `LIVE`'s name.
const MIGRATING: TableDefinition<(u32, &str), (u64, &[u8])> =
    TableDefinition::new("live_incidents_migrating");

/// Moves a store of the layout before the frame log (frames keyed by
/// incident) to the current one, in `txn`: each incident's frames are
/// folded into its whole encoding, which is how a restore reads them
/// anyway. Returns how many incidents were moved; 0 for a current store.
pub(super) fn migrate(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let old_layout = txn
        .list_tables()
        .map_err(|e| unavailable("list tables", e))?
        .any(|table| table.name() == OLD_CHANGES.name());
    if !old_layout {
        return Ok(0);
    }
    let mut moved = 0;
    {
        let old = txn
            .open_table(OLD_LIVE)
            .map_err(|e| unavailable("open table", e))?;
        let changes = txn
            .open_table(OLD_CHANGES)
            .map_err(|e| unavailable("open table", e))?;
        let mut migrating = txn
            .open_table(MIGRATING)
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
            // Frame number 0: no frame in the (new, empty) log is older.
            migrating
                .insert((shard, id), (0, bytes.as_slice()))
                .map_err(|e| unavailable("write", e))?;
            moved += 1;
        }
    }
    txn.delete_table(OLD_LIVE)
        .map_err(|e| unavailable("delete table", e))?;
    txn.delete_table(OLD_CHANGES)
        .map_err(|e| unavailable("delete table", e))?;
    txn.rename_table(MIGRATING, LIVE)
        .map_err(|e| unavailable("rename table", e))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use incidentd_actors::model::{IncidentId, Timestamp};
    use incidentd_actors::ports::{SnapshotBatch, SnapshotStore, SnapshotWrite};

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

    /// An older build opens `live_incidents` as whole encodings only; it
    /// must fail on a moved store rather than find it empty.
    #[test]
    fn the_old_layout_cannot_open_a_moved_store() {
        let dir = tempfile::tempdir().unwrap();
        drop(LocalStore::open(dir.path()).unwrap());
        let db = redb::Database::create(dir.path().join("incidentd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let refused = txn.open_table(OLD_LIVE).map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, redb::TableError::TableTypeMismatch { .. }),
            "{refused}"
        );
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
