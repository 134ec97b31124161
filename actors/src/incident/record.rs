use std::sync::Arc;

use crate::model::{Change, Incident, IncidentEvent, IncidentStatus, TimelineEntry, Timestamp};

use super::IncidentRules;

/// Who caused a change that no person asked for.
pub(crate) const SYSTEM: &str = "system";

impl Incident {
    /// Applies the bookkeeping every change shares: next `seq`, a timeline
    /// entry (oldest dropped past the cap), the archive deadline of a resolved
    /// incident, and the event that announces it.
    pub(crate) fn record(
        &mut self,
        change: Change,
        actor: &str,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        self.seq += 1;
        self.updated_at = now;
        let kind = change.kind();
        self.timeline.push_back(TimelineEntry {
            seq: self.seq,
            at: now,
            kind,
            actor: actor.to_string(),
            message: change.describe(),
        });
        self.timeline_total += 1;
        while self.timeline.len() > rules.max_timeline_entries.max(1) {
            self.timeline.pop_front();
        }
        // Any change to a resolved incident restarts its quiet period.
        self.archive_at = match (self.status, &change) {
            (_, Change::Archived) => None,
            (IncidentStatus::Resolved, _) => Some(now.plus(rules.retention)),
            _ => None,
        };
        out.push(IncidentEvent {
            id: IncidentEvent::event_id(self.id, self.seq),
            incident_id: self.id,
            tenant: self.tenant.clone(),
            group_key: self.group_key.clone(),
            seq: self.seq,
            time: now,
            kind,
            actor: actor.to_string(),
            change,
            incident: Arc::new(self.summary()),
        });
    }

    /// Bumps the timer generation when the earliest deadline moved, so a
    /// timer armed for the old one is recognised as stale.
    pub(crate) fn note_deadline_change(&mut self, before: Option<Timestamp>) {
        if self.next_deadline() != before {
            self.timer_generation += 1;
        }
    }
}
