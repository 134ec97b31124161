//! Turning a shard's stored snapshots back into incidents at start.

use std::sync::Arc;

use crate::incident::decode_incident;
use crate::model::Incident;
use crate::telemetry;

/// Entries decoded per blocking task: large enough to amortise the task,
/// small enough that both cores get work on a big shard.
const CHUNK: usize = 4_096;

/// A stored entry that could not be decoded; it was skipped, not restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSnapshot {
    pub shard: usize,
    /// The store's key for the entry, so the store can move it aside.
    pub key: String,
    pub reason: String,
}

pub(crate) type Decoded = (Vec<(Incident, Arc<Vec<u8>>)>, Vec<RejectedSnapshot>);

/// Decodes a shard's entries in chunks on blocking threads, concurrently.
/// A bad entry is logged, counted and reported; it never stops the rest.
pub(crate) async fn decode_shard(shard: usize, entries: Vec<(String, Vec<u8>)>) -> Decoded {
    let mut tasks = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<(String, Vec<u8>)> = entries.by_ref().take(CHUNK).collect();
        tasks.push(tokio::task::spawn_blocking(move || {
            decode_chunk(shard, chunk)
        }));
    }
    let mut restored = Vec::new();
    let mut rejected = Vec::new();
    for task in tasks {
        let (ok, bad) = task
            .await
            .expect("decoding does not panic: errors are values");
        restored.extend(ok);
        rejected.extend(bad);
    }
    (restored, rejected)
}

fn decode_chunk(shard: usize, chunk: Vec<(String, Vec<u8>)>) -> Decoded {
    let mut restored = Vec::with_capacity(chunk.len());
    let mut rejected = Vec::new();
    for (key, bytes) in chunk {
        match decode_incident(&key, &bytes) {
            Ok(incident) => restored.push((incident, Arc::new(bytes))),
            Err(e) => {
                tracing::error!(shard, key = %key, error = %e, "skipping a snapshot that cannot be decoded");
                telemetry::snapshot_rejected();
                rejected.push(RejectedSnapshot {
                    shard,
                    key,
                    reason: e.to_string(),
                });
            }
        }
    }
    (restored, rejected)
}
