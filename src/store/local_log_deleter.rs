//! Deletes the segments compaction drops from the shard logs, on a thread
//! of its own: a delete took 10–17 ms here, and done inline it made every
//! compaction's commit, and the shard's next, wait for it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use incidentd_actors::ports::StoreError;

use super::local::unavailable;
use super::local_log::RetiredSegment;
use crate::telemetry;

/// Segments waiting for their delete. A compaction that finds the queue
/// full waits: the disk the log may take stays bounded.
const QUEUE: usize = 16;

pub(super) struct SegmentDeleter {
    queue: Option<SyncSender<RetiredSegment>>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentDeleter {
    pub(super) fn start() -> Result<SegmentDeleter, StoreError> {
        let (queue, segments) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("incidentd-log-delete".into())
            .spawn(move || delete_in_order(segments))
            .map_err(|e| unavailable("start the segment deleter", e))?;
        Ok(SegmentDeleter {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `segment` behind those retired before it.
    pub(super) fn delete(&self, segment: RetiredSegment) {
        let queue = self.queue.as_ref().expect("open until dropped");
        if queue.send(segment).is_err() {
            // Kept, as after a failed delete: read again at the next start.
            tracing::error!(
                "the log segment deleter has stopped; dropped segments stay on disk until restart"
            );
        }
    }
}

/// The queued deletes are done before the store is gone, so a clean
/// shutdown leaves no dropped segment for the next start to read.
impl Drop for SegmentDeleter {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn delete_in_order(segments: Receiver<RetiredSegment>) {
    // After a failed delete, the shard's newer segments are kept too: one
    // must not be gone while an older one can come back (see `delete`).
    // They are read again at the next start, which changes nothing, and
    // compacted away then.
    let mut failed: HashSet<PathBuf> = HashSet::new();
    for segment in segments {
        let outcome = if failed.contains(segment.dir()) {
            "kept"
        } else {
            let dir = segment.dir().to_path_buf();
            match segment.delete() {
                Ok(()) => "deleted",
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        dir = %dir.display(),
                        "deleting a dropped log segment failed; this shard's dropped \
                         segments stay on disk until restart"
                    );
                    failed.insert(dir);
                    "failed"
                }
            }
        };
        metrics::counter!(telemetry::LOCAL_LOG_SEGMENTS_DROPPED, "outcome" => outcome).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use incidentd_actors::model::{IncidentId, Timestamp};
    use incidentd_actors::ports::{SnapshotBatch, SnapshotWrite};

    use super::super::local_log::tests::segment_files;
    use super::super::local_log::ShardLog;
    use super::*;

    /// A log of one-commit segments, its two oldest dropped: returns them
    /// oldest first, with their files.
    fn two_dropped(dir: &Path) -> Vec<(PathBuf, RetiredSegment)> {
        let mut log = ShardLog::open(dir, 1).unwrap();
        for n in 0..4 {
            let id = IncidentId::new(Timestamp(n));
            let batch = SnapshotBatch {
                upserts: vec![(id, SnapshotWrite::Whole(Arc::new(vec![1])))],
                archived: vec![(id, Arc::new(vec![2]))],
                ..SnapshotBatch::default()
            };
            log.commit(&batch).unwrap();
        }
        segment_files(dir)
            .into_iter()
            .take(2)
            .map(|oldest| (oldest, log.compact_oldest(|_| Ok(())).unwrap().unwrap()))
            .collect()
    }

    /// After a failed delete, a newer segment of that shard is kept (an
    /// older one must not come back without it); other shards go on.
    #[test]
    fn a_failed_delete_keeps_the_shards_newer_segments_and_no_other() {
        let (failing, healthy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut failing_dropped = two_dropped(failing.path());
        let healthy_dropped = two_dropped(healthy.path());
        // Gone already, so its delete fails.
        std::fs::remove_file(&failing_dropped[0].0).unwrap();

        let deleter = SegmentDeleter::start().unwrap();
        let (newer, newer_segment) = failing_dropped.pop().unwrap();
        let (_, older_segment) = failing_dropped.pop().unwrap();
        deleter.delete(older_segment);
        deleter.delete(newer_segment);
        let healthy_paths: Vec<PathBuf> = healthy_dropped
            .into_iter()
            .map(|(path, segment)| {
                deleter.delete(segment);
                path
            })
            .collect();
        drop(deleter); // waits for the queued deletes

        assert!(newer.exists(), "kept behind the failed delete");
        for path in healthy_paths {
            assert!(!path.exists(), "{} deleted", path.display());
        }
    }
}
