use std::sync::Arc;

use crate::model::{
    Change, Command, CommandError, Incident, IncidentEvent, IncidentStatus, Timestamp,
};

use super::IncidentRules;

/// Longest note accepted.
pub const MAX_NOTE_LEN: usize = 4096;
/// Longest title accepted.
pub const MAX_TITLE_LEN: usize = 1024;

impl Incident {
    /// Applies a command from `actor`. A command that does not apply to the
    /// current state returns an error and changes nothing.
    pub fn apply_command(
        &mut self,
        command: Command,
        actor: &str,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) -> Result<(), CommandError> {
        self.check_command(&command, now, rules)?;
        let before = self.next_deadline();
        match command {
            Command::Acknowledge => {
                self.status = IncidentStatus::Acknowledged;
                self.acknowledged_at = Some(now);
                self.acknowledged_by = Some(actor.to_string());
                self.snoozed_until = None;
                self.stop_escalation();
                self.ack_timeout_at =
                    (!self.route.ack_timeout.is_zero()).then(|| now.plus(self.route.ack_timeout));
                self.record(Change::Acknowledged, actor, now, rules, out);
            }
            Command::Unacknowledge => {
                self.retrigger(now, rules);
                self.record(Change::Unacknowledged, actor, now, rules, out);
            }
            Command::Resolve => self.resolve(actor, false, now, rules, out),
            Command::Reopen => self.reopen(actor, now, rules, out),
            Command::Assign { assignee } => {
                self.assignee = assignee.as_deref().map(Arc::from);
                self.record(Change::Assigned { assignee }, actor, now, rules, out);
            }
            Command::AddNote { text } => {
                self.record(Change::NoteAdded { text }, actor, now, rules, out)
            }
            Command::EscalateNow => {
                let keep_going = self.status == IncidentStatus::Triggered;
                self.fire_escalation(now, now, keep_going, actor, rules, out);
            }
            Command::Snooze { until } => {
                self.status = IncidentStatus::Snoozed;
                self.snoozed_until = Some(until);
                self.ack_timeout_at = None;
                self.stop_escalation();
                self.record(Change::Snoozed { until }, actor, now, rules, out);
            }
            Command::ChangeSeverity { severity } => {
                let change = Change::SeverityChanged {
                    from: self.severity,
                    to: severity,
                };
                self.severity = severity;
                self.record(change, actor, now, rules, out);
            }
            Command::ChangeTitle { title } => {
                let change = Change::TitleChanged {
                    from: std::mem::replace(&mut self.title, Arc::from(title.as_str())).to_string(),
                    to: title,
                };
                self.record(change, actor, now, rules, out);
            }
        }
        self.note_deadline_change(before);
        Ok(())
    }

    /// Says why a command cannot apply, before anything changes.
    fn check_command(
        &self,
        command: &Command,
        now: Timestamp,
        rules: &IncidentRules,
    ) -> Result<(), CommandError> {
        use IncidentStatus::*;
        let refuse = |hint: &'static str| CommandError::NotApplicable {
            id: self.id,
            command: command.name(),
            status: self.status,
            hint,
        };
        let invalid =
            |field: &'static str, message: String| CommandError::Invalid { field, message };
        if self.archived {
            return Err(refuse("it was archived"));
        }
        match (command, self.status) {
            (Command::Acknowledge, Acknowledged) => Err(refuse("it is already acknowledged")),
            (Command::Acknowledge, Resolved) => Err(refuse("reopen it first")),
            (Command::Unacknowledge, Triggered | Snoozed | Resolved) => Err(refuse(
                "only an acknowledged incident can be unacknowledged",
            )),
            (Command::Resolve, Resolved) => Err(refuse("it is already resolved")),
            (Command::Reopen, Triggered | Acknowledged | Snoozed) => {
                Err(refuse("only a resolved incident can be reopened"))
            }
            (Command::EscalateNow, Resolved) => Err(refuse("reopen it first")),
            (Command::EscalateNow, _) if !self.has_pending_step(rules) => {
                Err(refuse("its escalation policy has no step left to fire"))
            }
            (Command::Snooze { .. }, Resolved | Snoozed) => Err(refuse(
                "only a triggered or acknowledged incident can be snoozed",
            )),
            (Command::Snooze { until }, _) if *until <= now => {
                Err(invalid("until", format!("{until} is not in the future")))
            }
            (Command::Assign { assignee }, _)
                if assignee.as_deref() == self.assignee.as_deref() =>
            {
                Err(refuse("it already has that assignee"))
            }
            (Command::Assign { assignee: Some(a) }, _) if a.trim().is_empty() => {
                Err(invalid("assignee", "must not be blank".into()))
            }
            (Command::AddNote { text }, _)
                if text.trim().is_empty() || text.len() > MAX_NOTE_LEN =>
            {
                Err(invalid(
                    "text",
                    format!("a note needs 1 to {MAX_NOTE_LEN} characters"),
                ))
            }
            (Command::ChangeSeverity { severity }, _) if *severity == self.severity => {
                Err(refuse("it already has that severity"))
            }
            (Command::ChangeTitle { title }, _)
                if title.trim().is_empty() || title.len() > MAX_TITLE_LEN =>
            {
                Err(invalid(
                    "title",
                    format!("a title needs 1 to {MAX_TITLE_LEN} characters"),
                ))
            }
            (Command::ChangeTitle { title }, _) if **title == *self.title => {
                Err(refuse("it already has that title"))
            }
            _ => Ok(()),
        }
    }

    fn has_pending_step(&self, rules: &IncidentRules) -> bool {
        self.escalation
            .policy
            .as_deref()
            .and_then(|id| rules.policies.get(id))
            .is_some_and(|p| p.step(self.escalation.step).is_some())
    }

    /// Back to triggered with escalation resumed where it stopped.
    pub(crate) fn retrigger(&mut self, now: Timestamp, rules: &IncidentRules) {
        self.status = IncidentStatus::Triggered;
        self.acknowledged_at = None;
        self.acknowledged_by = None;
        self.ack_timeout_at = None;
        self.resume_escalation(now, rules);
    }

    pub(crate) fn resolve(
        &mut self,
        actor: &str,
        automatic: bool,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        self.status = IncidentStatus::Resolved;
        self.resolved_at = Some(now);
        self.resolved_by = Some(actor.to_string());
        self.snoozed_until = None;
        self.ack_timeout_at = None;
        self.auto_resolve_at = None;
        self.stop_escalation();
        self.record(Change::Resolved { automatic }, actor, now, rules, out);
    }

    pub(crate) fn reopen(
        &mut self,
        actor: &str,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        self.status = IncidentStatus::Triggered;
        self.reopen_count += 1;
        self.resolved_at = None;
        self.resolved_by = None;
        self.acknowledged_at = None;
        self.acknowledged_by = None;
        self.start_escalation(now, rules);
        let change = Change::Reopened {
            reopen_count: self.reopen_count,
        };
        self.record(change, actor, now, rules, out);
    }
}
