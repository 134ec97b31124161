use std::sync::Arc;

use crate::model::{
    Alert, AlertState, AlertStatus, Change, CompactString, Incident, IncidentEvent, IncidentStatus,
    Timestamp,
};

use super::record::SYSTEM;
use super::IncidentRules;

const ALERT_ACTOR: &str = "system:alert";

impl Incident {
    /// Applies alerts of this incident's group in order: dedup, grouping,
    /// severity raise, reopen and auto-resolve arming. A firing alert that
    /// arrives after the reopen window of a resolved incident belongs to a
    /// new incident: it and every alert after it are returned untouched.
    pub fn apply_alerts(
        &mut self,
        alerts: Vec<Alert>,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) -> Vec<Alert> {
        let before = self.next_deadline();
        let mut alerts = alerts.into_iter();
        let mut bounced = Vec::new();
        for alert in alerts.by_ref() {
            if self.archived || (alert.status == AlertStatus::Firing && !self.may_reopen_at(now)) {
                bounced.push(alert);
                break;
            }
            self.apply_alert(&alert, now, rules, out);
        }
        bounced.extend(alerts);
        self.note_deadline_change(before);
        bounced
    }

    /// A resolved incident takes a firing alert only inside its reopen window.
    fn may_reopen_at(&self, now: Timestamp) -> bool {
        match (self.status, self.resolved_at) {
            (IncidentStatus::Resolved, Some(at)) => now.since(at) <= self.route.reopen_window,
            _ => true,
        }
    }

    fn apply_alert(
        &mut self,
        alert: &Alert,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        self.total_alerts += 1;
        if alert.status == AlertStatus::Firing && self.status == IncidentStatus::Resolved {
            self.reopen(ALERT_ACTOR, now, rules, out);
        }
        let dedup_window = self.route.dedup_window;
        let Some(state) = self.alerts.get_mut(&alert.fingerprint) else {
            self.add_alert(alert, now, rules, out);
            return;
        };
        state.count += 1;
        state.last_seen = now;
        let change = match (alert.status, state.status) {
            (AlertStatus::Firing, AlertStatus::Firing)
                if now.since(state.last_event_at) < dedup_window =>
            {
                None
            }
            (AlertStatus::Resolved, AlertStatus::Resolved) => None,
            (AlertStatus::Firing, before) => {
                if before == AlertStatus::Resolved {
                    self.firing_alerts += 1;
                }
                state.status = AlertStatus::Firing;
                state.severity = alert.severity;
                state.last_event_at = now;
                Some(Change::AlertAdded {
                    fingerprint: alert.fingerprint.clone(),
                    severity: alert.severity,
                    summary: alert.summary.clone(),
                    refire: true,
                })
            }
            (AlertStatus::Resolved, AlertStatus::Firing) => {
                self.firing_alerts -= 1;
                state.status = AlertStatus::Resolved;
                state.last_event_at = now;
                Some(Change::AlertResolved {
                    fingerprint: alert.fingerprint.clone(),
                })
            }
        };
        match change {
            None => self.duplicate_alerts += 1,
            Some(change) => {
                let firing = matches!(change, Change::AlertAdded { .. });
                self.record(change, ALERT_ACTOR, now, rules, out);
                self.after_alert_change(firing, alert, now, rules, out);
            }
        }
    }

    fn add_alert(
        &mut self,
        alert: &Alert,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        if alert.status == AlertStatus::Resolved {
            // Nothing to resolve: this incident never saw the alert fire.
            self.duplicate_alerts += 1;
            return;
        }
        if self.alerts.len() >= rules.max_alerts_per_incident {
            self.dropped_alerts += 1;
            return;
        }
        // Only firing alerts get here.
        self.firing_alerts += 1;
        self.alerts.insert(
            alert.fingerprint.clone(),
            AlertState {
                status: alert.status,
                severity: alert.severity,
                summary: alert.summary.clone(),
                count: 1,
                first_seen: now,
                last_seen: now,
                last_event_at: now,
            },
        );
        // Keep only the labels every alert of the incident shares (copying
        // them, as summaries share them, only when one goes).
        let shared =
            |name: &CompactString, value: &CompactString| alert.labels.get(name) == Some(value);
        if !self.labels.iter().all(|(name, value)| shared(name, value)) {
            Arc::make_mut(&mut self.labels).retain(|name, value| shared(name, value));
        }
        let change = Change::AlertAdded {
            fingerprint: alert.fingerprint.clone(),
            severity: alert.severity,
            summary: alert.summary.clone(),
            refire: false,
        };
        self.record(change, ALERT_ACTOR, now, rules, out);
        self.after_alert_change(true, alert, now, rules, out);
    }

    /// A firing alert cancels a pending auto-resolve and may raise the
    /// severity; a resolved one may arm auto-resolve.
    fn after_alert_change(
        &mut self,
        firing: bool,
        alert: &Alert,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) {
        if firing {
            self.auto_resolve_at = None;
            if alert.severity > self.severity {
                let change = Change::SeverityChanged {
                    from: self.severity,
                    to: alert.severity,
                };
                self.severity = alert.severity;
                self.record(change, SYSTEM, now, rules, out);
            }
        } else if self.route.auto_resolve
            && self.status != IncidentStatus::Resolved
            && self.auto_resolve_at.is_none()
            && self
                .alerts
                .values()
                .all(|a| a.status == AlertStatus::Resolved)
        {
            self.auto_resolve_at = Some(now.plus(self.route.auto_resolve_grace));
        }
    }
}
