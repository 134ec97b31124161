//! In-memory implementations of the ports, for tests and benches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{EventSink, ShardSnapshot, SnapshotBatch, SnapshotStore, SnapshotWrite, StoreError};
use crate::model::{IncidentEvent, IncidentId};

#[derive(Default)]
struct ShardData {
    live: BTreeMap<IncidentId, Arc<Vec<u8>>>,
    archive: BTreeMap<IncidentId, Arc<Vec<u8>>>,
    quarantine: BTreeMap<String, Arc<Vec<u8>>>,
    offsets: BTreeMap<String, i64>,
}

/// A snapshot store that lives as long as the value does.
#[derive(Default)]
pub struct MemoryStore {
    shards: Mutex<HashMap<usize, ShardData>>,
    failing: Mutex<bool>,
    save_attempts: AtomicUsize,
    /// While set, each save waits for a permit: tests hold a commit in
    /// flight and let the engine go on meanwhile.
    gate: Mutex<Option<Arc<Semaphore>>>,
}

impl MemoryStore {
    /// Makes every save fail until called again with `false`, to test outages.
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    /// Makes every save wait until `let_saves_through` lets it (or
    /// `stop_holding` lets all through), to test what happens while a
    /// commit is in flight.
    pub fn hold_saves(&self) {
        *self.gate.lock().unwrap() = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets `count` held saves (waiting or still to come) through.
    pub fn let_saves_through(&self, count: usize) {
        if let Some(gate) = &*self.gate.lock().unwrap() {
            gate.add_permits(count);
        }
    }

    /// Lets every save through again.
    pub fn stop_holding(&self) {
        if let Some(gate) = self.gate.lock().unwrap().take() {
            gate.close();
        }
    }

    /// Calls of `save_batch`, failed ones included.
    pub fn save_attempts(&self) -> usize {
        self.save_attempts.load(Ordering::Relaxed)
    }

    pub fn live_count(&self) -> usize {
        self.shards
            .lock()
            .unwrap()
            .values()
            .map(|s| s.live.len())
            .sum()
    }

    pub fn quarantined_count(&self) -> usize {
        self.shards
            .lock()
            .unwrap()
            .values()
            .map(|s| s.quarantine.len())
            .sum()
    }

    pub fn archived_count(&self) -> usize {
        self.shards
            .lock()
            .unwrap()
            .values()
            .map(|s| s.archive.len())
            .sum()
    }

    /// Puts raw bytes under an id, as a corrupt store would hold them.
    pub fn put_raw(&self, shard: usize, id: IncidentId, bytes: Vec<u8>) {
        let mut shards = self.shards.lock().unwrap();
        shards
            .entry(shard)
            .or_default()
            .live
            .insert(id, Arc::new(bytes));
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn load_shard(&self, shard: usize) -> Result<ShardSnapshot, StoreError> {
        let shards = self.shards.lock().unwrap();
        Ok(shards
            .get(&shard)
            .map(|data| ShardSnapshot {
                incidents: data
                    .live
                    .iter()
                    .map(|(id, b)| (format!("shard-{shard}/{id}"), b.to_vec()))
                    .collect(),
                offsets: data.offsets.clone(),
            })
            .unwrap_or_default())
    }

    async fn save_batch(&self, shard: usize, batch: &SnapshotBatch) -> Result<(), StoreError> {
        self.save_attempts.fetch_add(1, Ordering::Relaxed);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            // Closed by `stop_holding`: go on without a permit.
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
        if *self.failing.lock().unwrap() {
            return Err(StoreError::Unavailable("memory store set to fail".into()));
        }
        let mut shards = self.shards.lock().unwrap();
        let data = shards.entry(shard).or_default();
        // All or nothing, as the other stores: check before writing.
        for (id, write) in &batch.upserts {
            if matches!(write, SnapshotWrite::Append(_)) && !data.live.contains_key(id) {
                return Err(StoreError::NothingToAppendTo { id: *id });
            }
        }
        for (id, write) in &batch.upserts {
            match write {
                SnapshotWrite::Whole(bytes) => {
                    data.live.insert(*id, bytes.clone());
                }
                SnapshotWrite::Append(frame) => {
                    let stored = data.live.get_mut(id).expect("checked above");
                    Arc::make_mut(stored).extend_from_slice(frame);
                }
            }
        }
        for (id, bytes) in &batch.archived {
            data.live.remove(id);
            data.archive.insert(*id, bytes.clone());
        }
        data.offsets
            .extend(batch.offsets.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(())
    }

    async fn quarantine(&self, shard: usize, key: &str, _reason: &str) -> Result<(), StoreError> {
        let id = key
            .rsplit('/')
            .next()
            .and_then(|id| id.parse::<IncidentId>().ok())
            .ok_or_else(|| StoreError::Unavailable(format!("not a key of this store: {key:?}")))?;
        let mut shards = self.shards.lock().unwrap();
        let data = shards.entry(shard).or_default();
        if let Some(bytes) = data.live.remove(&id) {
            data.quarantine.insert(key.to_string(), bytes);
        }
        Ok(())
    }
}

/// An event sink that keeps every event, in publish order; tests can make
/// it report a full backlog.
#[derive(Default)]
pub struct CollectingSink {
    events: Mutex<Vec<IncidentEvent>>,
    full: Mutex<Option<String>>,
}

impl CollectingSink {
    pub fn set_backlog_full(&self, reason: Option<&str>) {
        *self.full.lock().unwrap() = reason.map(str::to_string);
    }

    pub fn events(&self) -> Vec<IncidentEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn events_of(&self, id: IncidentId) -> Vec<IncidentEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.incident_id == id)
            .collect()
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    fn publish(&self, events: &[IncidentEvent]) {
        self.events.lock().unwrap().extend_from_slice(events);
    }

    fn backlog_full(&self) -> Option<String> {
        self.full.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn appends_change_frames_and_refuses_them_without_a_stored_state() {
        let store = super::MemoryStore::default();
        super::super::store_check::check_change_frames(&store, 0).await;
    }
}
