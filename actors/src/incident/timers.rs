use crate::model::{Change, Incident, IncidentEvent, IncidentStatus, Timestamp};

use super::IncidentRules;

/// Bound on deadlines handled in one go, so a corrupt state cannot spin.
const MAX_FIRINGS_PER_CALL: usize = 10_000;

impl Incident {
    /// Handles every deadline that is due at `now`, oldest first: snooze
    /// expiry, acknowledgement timeout, auto-resolve, escalation steps and
    /// archiving. Overdue escalation steps (after a restore) fire one after
    /// the other, each exactly once, since the position advances as it fires.
    pub fn fire_due(
        &mut self,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        let before = self.next_deadline();
        for _ in 0..MAX_FIRINGS_PER_CALL {
            let Some(due) = self.next_deadline().filter(|d| *d <= now) else {
                break;
            };
            if self.snoozed_until == Some(due) {
                self.snoozed_until = None;
                self.status = IncidentStatus::Triggered;
                self.start_escalation(now, rules);
                self.record(Change::SnoozeExpired, "system:snooze", now, rules, out);
            } else if self.ack_timeout_at == Some(due) {
                self.retrigger(now, rules);
                self.record(Change::AckTimedOut, "system:ack-timeout", now, rules, out);
            } else if self.auto_resolve_at == Some(due) {
                self.resolve("system:auto-resolve", true, now, rules, out);
            } else if self.escalation.next_at == Some(due) {
                // The next step counts from this one's deadline, not from
                // when it ran, so late firing does not push the schedule.
                self.fire_escalation(due, now, true, "system:escalation", rules, out);
            } else if self.archive_at == Some(due) {
                self.archive_at = None;
                self.archived = true;
                self.record(Change::Archived, "system:retention", now, rules, out);
            }
        }
        self.note_deadline_change(before);
    }
}
