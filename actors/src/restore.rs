//! Turning a shard's stored snapshots back into incidents at start.

use std::sync::Arc;
use std::time::Duration;

use crate::incident::decode_incident;
use crate::model::{IncidentEvent, IncidentId, IncidentSummary, Timestamp};
use crate::shard::{group_of, GroupRef};
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

/// A stored incident made ready to be kept passivated: everything its
/// shard needs from the decoded state is taken out on a decoding thread,
/// so the shard's start only fills its maps (one core per shard) and the
/// decoded state is dropped where it was made.
pub(crate) struct RestoredIncident {
    pub id: IncidentId,
    pub group: GroupRef,
    pub deadline: Option<Timestamp>,
    pub timer_generation: u64,
    pub summary: Arc<IncidentSummary>,
    pub bytes: Arc<Vec<u8>>,
    /// Its last escalation step again, when that fired within the window.
    pub redelivery: Option<IncidentEvent>,
}

/// When a restore happens and how recent a fired escalation step must be
/// to be published again (`EngineSettings::redeliver_escalations_within`).
#[derive(Clone, Copy)]
pub(crate) struct RestoreAt {
    pub now: Timestamp,
    pub redeliver_within: Duration,
}

pub(crate) type Decoded = (Vec<RestoredIncident>, Vec<RejectedSnapshot>);

/// Decodes a shard's entries in chunks on blocking threads, concurrently.
/// A bad entry is logged, counted and reported; it never stops the rest.
pub(crate) async fn decode_shard(
    shard: usize,
    entries: Vec<(String, Vec<u8>)>,
    at: RestoreAt,
) -> Decoded {
    let mut tasks = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<(String, Vec<u8>)> = entries.by_ref().take(CHUNK).collect();
        tasks.push(tokio::task::spawn_blocking(move || {
            decode_chunk(shard, chunk, at)
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

fn decode_chunk(shard: usize, chunk: Vec<(String, Vec<u8>)>, at: RestoreAt) -> Decoded {
    let mut restored = Vec::with_capacity(chunk.len());
    let mut rejected = Vec::new();
    for (key, bytes) in chunk {
        match decode_incident(&key, &bytes) {
            Ok(incident) => restored.push(RestoredIncident {
                id: incident.id,
                group: group_of(&incident),
                deadline: incident.next_deadline(),
                timer_generation: incident.timer_generation,
                summary: Arc::new(incident.summary()),
                bytes: Arc::new(bytes),
                redelivery: (!at.redeliver_within.is_zero())
                    .then(|| incident.recent_escalation(at.now, at.redeliver_within))
                    .flatten(),
            }),
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
