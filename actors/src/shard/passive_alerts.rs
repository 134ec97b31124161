use std::sync::Arc;
use std::time::Instant;

use crate::incident::{encode_incident, take_alerts, RecordRuns};
use crate::model::{Alert, IncidentId, Timestamp};
use crate::telemetry;

use super::batch::GroupInput;
use super::entry::Entry;
use super::supervisor::ShardState;

impl ShardState {
    /// Whether alerts for a passivated incident are applied by the shard
    /// rather than by waking its actor: once `max_resident` actors run.
    /// Past the cap, a woken actor would only make a sweep stop another
    /// (a storm wider than the cap started and stopped an actor per alert),
    /// and while the store fails it could not be stopped at all.
    pub(super) fn applies_alerts_while_passive(&self) -> bool {
        let settings = &self.context.settings.passivation;
        settings.enabled && self.actors.len() >= settings.max_resident
    }

    /// Applies `alerts` to the passivated incident `id` the way its actor
    /// would (`take_alerts`), and keeps it passivated with its new state,
    /// which the next commit stores whole. Returns the alerts it did not
    /// take as the input of the group's next incident (empty when it took
    /// them all), or None when the incident is not passivated here or its
    /// state cannot be decoded.
    pub(super) fn apply_while_passive(
        &mut self,
        id: IncidentId,
        alerts: Vec<Alert>,
        records: RecordRuns,
        now: Timestamp,
        received: Instant,
    ) -> Option<GroupInput> {
        let Some(Entry::Passive { bytes, group }) = self.incidents.get(&id) else {
            return None;
        };
        let group = group.clone();
        let mut incident = self.decode_passive(id, bytes)?;
        telemetry::updated_while_passive();
        let count = alerts.len();
        let bounced = take_alerts(&mut incident, alerts, &self.context, now, received);
        // Duplicates raise no event, so the read model has not seen their
        // counts; a passivated incident's summary is not refreshed by its
        // commit either.
        self.context.read_model.insert(Arc::new(incident.summary()));
        self.timers
            .set(id, incident.next_deadline(), incident.timer_generation);
        self.publish_earliest(false);
        if let Some(Entry::Passive { bytes, .. }) = self.incidents.get_mut(&id) {
            *bytes = Arc::new(encode_incident(&incident));
        }
        self.mark_dirty([id]);
        Some(GroupInput {
            group,
            route: Arc::new(incident.route),
            records: records.split_off(count - bounced.len()),
            alerts: bounced,
        })
    }
}
