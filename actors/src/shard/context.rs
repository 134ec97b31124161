use std::sync::Arc;

use ractor::ActorRef;

use crate::incident::IncidentRules;
use crate::model::{Incident, IncidentEvent};
use crate::ports::{Clock, EventSink, SnapshotStore};
use crate::read_model::ReadModel;
use crate::settings::EngineSettings;
use crate::telemetry;

use super::{ShardLoad, ShardMsg};

/// What a shard and its incident actors share.
pub(crate) struct ShardContext {
    pub shard: usize,
    pub settings: EngineSettings,
    pub rules: IncidentRules,
    pub clock: Arc<dyn Clock>,
    pub sink: Arc<dyn EventSink>,
    pub store: Arc<dyn SnapshotStore>,
    pub read_model: Arc<ReadModel>,
    pub load: Arc<ShardLoad>,
}

/// An incident's deadline and liveness, reported to its shard after a change.
pub(crate) struct IncidentUpdate {
    pub id: crate::model::IncidentId,
    pub deadline: Option<crate::model::Timestamp>,
    pub generation: u64,
    /// Final encoded state when the incident was just archived.
    pub archived: Option<Arc<Vec<u8>>>,
}

impl ShardContext {
    /// Sends an incident's events out and refreshes its read-model entry.
    pub fn publish(&self, incident: &Incident, events: Vec<IncidentEvent>) {
        telemetry::events_emitted(&events);
        self.sink.publish(&events);
        match events.last() {
            Some(_) if incident.archived => self.read_model.remove(&incident.id),
            Some(last) => self.read_model.insert(last.incident.clone()),
            None => {}
        }
    }

    /// Tells the shard an incident's current deadline (and if it was archived).
    pub fn report(&self, shard: &ActorRef<ShardMsg>, incident: &Incident) {
        let update = IncidentUpdate {
            id: incident.id,
            deadline: incident.next_deadline(),
            generation: incident.timer_generation,
            archived: incident
                .archived
                .then(|| Arc::new(crate::incident::encode_incident(incident))),
        };
        let _ = shard.cast(ShardMsg::Updated(update));
    }
}
