use std::sync::Arc;

use dashmap::DashMap;

use crate::model::{IncidentId, IncidentSummary};

/// The latest summary of every live incident, shared with the API. Written
/// by incidents on every change (and at each flush, for counters that change
/// without an event), read without going through any actor.
#[derive(Default)]
pub struct ReadModel {
    summaries: DashMap<IncidentId, Arc<IncidentSummary>>,
}

impl ReadModel {
    pub fn get(&self, id: &IncidentId) -> Option<Arc<IncidentSummary>> {
        self.summaries.get(id).map(|s| s.value().clone())
    }

    /// A copy of every summary, for filtering and sorting by the caller.
    pub fn all(&self) -> Vec<Arc<IncidentSummary>> {
        self.summaries.iter().map(|s| s.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    pub(crate) fn insert(&self, summary: Arc<IncidentSummary>) {
        self.summaries.insert(summary.id, summary);
    }

    pub(crate) fn remove(&self, id: &IncidentId) {
        self.summaries.remove(id);
    }
}
