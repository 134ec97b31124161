//! What every `SnapshotStore` must do with change frames, as one check that
//! each store's tests run against a real instance of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{SnapshotBatch, SnapshotStore, SnapshotWrite, StoreError};
use crate::model::{IncidentId, Timestamp};

fn batch(writes: Vec<(IncidentId, SnapshotWrite)>) -> SnapshotBatch {
    SnapshotBatch {
        upserts: writes,
        ..SnapshotBatch::default()
    }
}

fn frame(bytes: &[u8]) -> Arc<Vec<u8>> {
    Arc::new(bytes.to_vec())
}

/// Panics unless `store`, on an empty `shard`: appends a change frame to
/// what is stored, replaces it with a whole write, refuses a batch with a
/// frame for an incident it holds nothing of (writing none of that batch),
/// and leaves no frames behind when it archives or quarantines.
pub async fn check_change_frames(store: &dyn SnapshotStore, shard: usize) {
    let (a, b, c) = (
        IncidentId::new(Timestamp(1)),
        IncidentId::new(Timestamp(2)),
        IncidentId::new(Timestamp(3)),
    );
    let stored = |snapshot: super::ShardSnapshot| -> BTreeMap<String, Vec<u8>> {
        snapshot.incidents.into_iter().collect()
    };
    let key = |id: IncidentId| format!("shard-{shard}/{id}");
    store
        .load_shard(shard)
        .await
        .expect("load (claims the shard)");
    let save = |writes| async move { store.save_batch(shard, &batch(writes)).await };

    save(vec![
        (a, SnapshotWrite::Whole(frame(&[1, 2]))),
        (b, SnapshotWrite::Whole(frame(&[5]))),
    ])
    .await
    .expect("whole writes");
    save(vec![(a, SnapshotWrite::Append(frame(&[3])))])
        .await
        .expect("an append");
    save(vec![(a, SnapshotWrite::Append(frame(&[4])))])
        .await
        .expect("another append");
    let live = stored(store.load_shard(shard).await.unwrap());
    assert_eq!(
        live.get(&key(a)),
        Some(&vec![1, 2, 3, 4]),
        "frames appended"
    );

    let refused = save(vec![
        (b, SnapshotWrite::Whole(frame(&[6]))),
        (a, SnapshotWrite::Append(frame(&[9]))),
        (c, SnapshotWrite::Append(frame(&[7]))),
    ])
    .await
    .expect_err("a frame for an incident with nothing stored");
    assert!(
        matches!(refused, StoreError::NothingToAppendTo { id } if id == c),
        "{refused:?}"
    );
    let live = stored(store.load_shard(shard).await.unwrap());
    assert_eq!(live.get(&key(b)), Some(&vec![5]), "nothing of it written");
    assert_eq!(live.get(&key(a)), Some(&vec![1, 2, 3, 4]));
    assert_eq!(live.get(&key(c)), None);

    save(vec![(a, SnapshotWrite::Whole(frame(&[8])))])
        .await
        .expect("a whole write after frames");
    let live = stored(store.load_shard(shard).await.unwrap());
    assert_eq!(
        live.get(&key(a)),
        Some(&vec![8]),
        "replaced, frames and all"
    );

    // Archiving and quarantine take the frames along: an incident stored
    // again under the same id (a replayed record derives it again) starts
    // from its new whole write only.
    save(vec![(a, SnapshotWrite::Append(frame(&[3])))])
        .await
        .unwrap();
    let archive = SnapshotBatch {
        archived: vec![(a, frame(&[8, 3]))],
        ..SnapshotBatch::default()
    };
    store.save_batch(shard, &archive).await.expect("archive");
    save(vec![(b, SnapshotWrite::Append(frame(&[7])))])
        .await
        .unwrap();
    store
        .quarantine(shard, &key(b), "check")
        .await
        .expect("quarantine");
    save(vec![
        (a, SnapshotWrite::Whole(frame(&[1]))),
        (b, SnapshotWrite::Whole(frame(&[2]))),
    ])
    .await
    .unwrap();
    let live = stored(store.load_shard(shard).await.unwrap());
    assert_eq!(
        live.get(&key(a)),
        Some(&vec![1]),
        "no frames left by the archive"
    );
    assert_eq!(
        live.get(&key(b)),
        Some(&vec![2]),
        "no frames left by the quarantine"
    );
}
