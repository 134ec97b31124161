use crate::model::{EventKind, FiredStep, Incident, IncidentEvent, Timestamp};

use super::IncidentRules;

impl Incident {
    /// Starts the policy for the current severity: its first step fires now.
    pub(crate) fn start_escalation(&mut self, now: Timestamp, rules: &IncidentRules) {
        let policy = self
            .route
            .policies
            .for_severity(self.severity)
            .map(str::to_string);
        let has_steps = policy
            .as_deref()
            .and_then(|id| rules.policies.get(id))
            .is_some_and(|p| !p.steps.is_empty());
        let pos = &mut self.escalation;
        pos.run += 1;
        pos.step = 0;
        pos.loop_index = 0;
        pos.next_at = has_steps.then_some(now);
        pos.policy = policy;
    }

    pub(crate) fn stop_escalation(&mut self) {
        self.escalation.next_at = None;
    }

    /// Re-arms the pending step, if the policy has one left, to fire now:
    /// the incident is triggered again and nobody is on it.
    pub(crate) fn resume_escalation(&mut self, now: Timestamp, rules: &IncidentRules) {
        let pending = self
            .escalation
            .policy
            .as_deref()
            .and_then(|id| rules.policies.get(id))
            .is_some_and(|p| p.step(self.escalation.step).is_some());
        self.escalation.next_at = pending.then_some(now);
    }

    /// Fires the pending step and moves to the next one. `keep_going` says
    /// whether the next step is armed (false when a person escalated an
    /// acknowledged or snoozed incident by hand). Returns false when there
    /// was no step to fire.
    pub(crate) fn fire_escalation(
        &mut self,
        base: Timestamp,
        now: Timestamp,
        keep_going: bool,
        actor: &str,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) -> bool {
        let Some(policy_id) = self.escalation.policy.clone() else {
            self.escalation.next_at = None;
            return false;
        };
        let Some(policy) = rules.policies.get(&policy_id) else {
            tracing::warn!(incident = %self.id, policy = %policy_id, "escalation policy no longer configured; escalation stops");
            self.escalation.next_at = None;
            return false;
        };
        let (step_index, loop_index) = (self.escalation.step, self.escalation.loop_index);
        let Some(step) = policy.step(step_index) else {
            self.escalation.next_at = None;
            return false;
        };
        let mut fired = FiredStep {
            seq: 0,
            at: now,
            actor: actor.to_string(),
            policy: policy_id.clone(),
            step: step_index,
            loop_index,
            targets: step.targets.clone(),
            channels: step.channels.clone(),
            idempotency_key: format!(
                "{}:{}:{}:{}",
                self.id, self.escalation.run, step_index, loop_index
            ),
        };
        let change = fired.change();
        self.escalation.fired += 1;
        match policy.after(step_index, loop_index) {
            Some((next_step, next_loop)) => {
                self.escalation.step = next_step;
                self.escalation.loop_index = next_loop;
                self.escalation.next_at = keep_going.then(|| base.plus(step.escalate_after));
            }
            None => {
                self.escalation.step = policy.steps.len() as u32;
                self.escalation.next_at = None;
            }
        }
        self.record(change, actor, now, rules, out);
        fired.seq = self.seq;
        self.escalation.last_fired = Some(fired);
        true
    }

    /// The event of the step fired last, again, when it fired within
    /// `window` before `now`: what a new owner republishes in case its
    /// delivery died with the previous owner.
    pub(crate) fn recent_escalation(
        &self,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Option<IncidentEvent> {
        let fired = self.escalation.last_fired.as_ref()?;
        (fired.at.plus(window) >= now).then(|| IncidentEvent {
            id: IncidentEvent::event_id(self.id, fired.seq),
            incident_id: self.id,
            tenant: self.tenant.clone(),
            group_key: self.group_key.clone(),
            seq: fired.seq,
            time: fired.at,
            kind: EventKind::Escalated,
            actor: fired.actor.clone(),
            change: fired.change(),
            incident: std::sync::Arc::new(self.summary()),
        })
    }
}
