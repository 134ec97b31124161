use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::model::{IncidentId, IncidentSummary, OpeningRecord, StableHash, Timestamp};

/// How far a source (e.g. a Kafka partition) has been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    pub source: String,
    pub offset: i64,
}

/// How far one batch of input reaches. `position` is where it sits in the
/// shard's own input (a replay of an applied position changes nothing);
/// `origins` are where its alerts were first read, when they came through a
/// re-keying hop (recorded too, so that hop can skip what it re-reads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub position: Option<SourcePosition>,
    pub origins: Vec<SourcePosition>,
    /// The stream records the batch's alerts were read from, in order. An
    /// incident an alert opens takes an id derived from its record, so a
    /// replay of that record after a crash opens it again under the same id,
    /// and what went out about it before the crash (events, notifications
    /// keyed by the id) is repeated rather than orphaned. Without records,
    /// ids are random.
    pub records: Vec<AlertRecord>,
}

impl Progress {
    pub fn at(position: Option<SourcePosition>) -> Progress {
        Progress {
            position,
            origins: Vec::new(),
            records: Vec::new(),
        }
    }
}

/// One record of a stream: the batch's alerts from index `first_alert` up
/// to the next record's `first_alert` were read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord {
    pub first_alert: usize,
    /// What an incident opened by the record's alerts derives its id from;
    /// None (random ids) for a record without a broker timestamp.
    pub(crate) opening: Option<OpeningRecord>,
}

impl AlertRecord {
    /// The record at `position` of `source`, the same on every read of it:
    /// a Kafka partition and `[offset]`, a Pulsar topic and the parts of a
    /// message id. `time` is its broker timestamp, the time part of the ids
    /// it opens (the same on every read, unlike the clock).
    pub fn new(
        first_alert: usize,
        source: &str,
        position: &[u64],
        time: Option<Timestamp>,
    ) -> AlertRecord {
        let opening = time.map(|time| {
            let mut hash = StableHash::new();
            hash.write(source.as_bytes()).write(&[0]);
            for part in position {
                hash.write(&part.to_le_bytes());
            }
            OpeningRecord {
                time,
                hash: hash.finish(),
            }
        });
        AlertRecord {
            first_alert,
            opening,
        }
    }
}

/// Everything a shard stored, as loaded at restore.
#[derive(Clone, Debug, Default)]
pub struct ShardSnapshot {
    /// Encoded incidents by store key; decoding happens in the engine so a
    /// bad entry is reported by key and skipped.
    pub incidents: Vec<(String, Vec<u8>)>,
    /// Highest applied offset per source.
    pub offsets: BTreeMap<String, i64>,
}

/// How a flush stores one live incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// Its whole encoding, replacing what was stored.
    Whole(Arc<Vec<u8>>),
    /// A change frame, appended to what is stored. Stored state is absent
    /// only if something outside this shard removed it; the store then
    /// refuses the batch (`StoreError::NothingToAppendTo`), and the shard's
    /// retry writes the incident whole.
    Append(Arc<Vec<u8>>),
}

impl SnapshotWrite {
    pub fn bytes(&self) -> &Arc<Vec<u8>> {
        match self {
            SnapshotWrite::Whole(bytes) | SnapshotWrite::Append(bytes) => bytes,
        }
    }
}

/// One flush of one shard, stored atomically.
#[derive(Clone, Debug, Default)]
pub struct SnapshotBatch {
    pub upserts: Vec<(IncidentId, SnapshotWrite)>,
    /// The summaries of the upserted incidents, for stores that keep a read
    /// model other replicas list from.
    pub summaries: Vec<Arc<IncidentSummary>>,
    /// Incidents leaving the live set, with their final state for the archive.
    pub archived: Vec<(IncidentId, Arc<Vec<u8>>)>,
    pub offsets: BTreeMap<String, i64>,
}

impl SnapshotBatch {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.archived.is_empty()
    }
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("snapshot store unavailable: {0}")]
    Unavailable(String),
    #[error("shard {shard} is owned by a newer epoch; this replica no longer owns it")]
    Fenced { shard: usize },
    #[error("incident {id} has no stored state to append its changes to")]
    NothingToAppendTo { id: IncidentId },
}

/// Where shards keep their snapshots.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    async fn load_shard(&self, shard: usize) -> Result<ShardSnapshot, StoreError>;
    async fn save_batch(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError>;
    /// Moves an entry the engine could not decode (`key` as `load_shard`
    /// returned it) out of the live set, keeping its bytes for a
    /// post-mortem, so the next restore does not trip over it again.
    async fn quarantine(&self, shard: usize, key: &str, reason: &str) -> Result<(), StoreError>;
    /// Whether incidents may be stored with counts frames (`encode_counts`).
    /// A store shared with replicas of a build that cannot read them (a
    /// rolling upgrade across them) says no: such a replica would
    /// quarantine the incidents it restores.
    fn takes_counts_frames(&self) -> bool {
        true
    }
}
