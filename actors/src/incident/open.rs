use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::model::{
    Alert, AlertState, Change, EscalationPosition, Incident, IncidentEvent, IncidentId,
    IncidentStatus, NewIncident, Timestamp,
};
use crate::routing::RouteSettings;

use super::IncidentRules;

impl Incident {
    /// A new incident opened by `first` (a firing alert of the group). The
    /// first alert is part of the `created` event, not an `alert_added` one.
    pub fn open(
        id: IncidentId,
        (tenant, group_key): (&str, &str),
        route: &Arc<RouteSettings>,
        first: &Alert,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) -> Incident {
        let title = if first.summary.is_empty() {
            group_key
        } else {
            &first.summary
        };
        let route = route.as_ref().clone();
        let mut incident = Incident::blank(id, (tenant, group_key), title, route, now);
        incident.severity = first.severity;
        incident.labels = Arc::new(first.labels.clone());
        incident.total_alerts = 1;
        incident.alerts.insert(
            first.fingerprint.clone(),
            AlertState {
                status: first.status,
                severity: first.severity,
                summary: first.summary.clone(),
                count: 1,
                first_seen: now,
                last_seen: now,
                last_event_at: now,
            },
        );
        incident.firing_alerts = incident.count_firing_alerts();
        incident.start_escalation(now, rules);
        let change = Change::Created {
            fingerprint: Some(first.fingerprint.clone()),
        };
        incident.record(change, "system:alert", now, rules, out);
        incident
    }

    /// A new incident opened by a person, with no alert behind it.
    pub fn open_manual(
        id: IncidentId,
        request: &NewIncident,
        actor: &str,
        now: Timestamp,
        rules: &IncidentRules,
        out: &mut Vec<IncidentEvent>,
    ) -> Incident {
        let mut route = RouteSettings::manual();
        route.service = request.service.clone();
        route.team = request.team.clone();
        let group_key = manual_group_key(id);
        let group = (request.tenant.as_str(), group_key.as_str());
        let mut incident = Incident::blank(id, group, &request.title, route, now);
        incident.severity = request.severity;
        incident.assignee = request.assignee.as_deref().map(Arc::from);
        incident.labels = Arc::new(request.labels.clone());
        incident.record(
            Change::Created { fingerprint: None },
            actor,
            now,
            rules,
            out,
        );
        incident
    }

    /// An incident with no alerts yet; its service and team are the route's.
    fn blank(
        id: IncidentId,
        (tenant, group_key): (&str, &str),
        title: &str,
        route: RouteSettings,
        now: Timestamp,
    ) -> Incident {
        Incident {
            id,
            tenant: Arc::from(tenant),
            group_key: Arc::from(group_key),
            title: Arc::from(title),
            severity: crate::model::Severity::Warning,
            status: IncidentStatus::Triggered,
            service: route.service.as_deref().map(Arc::from),
            team: route.team.as_deref().map(Arc::from),
            assignee: None,
            labels: Arc::default(),
            alerts: BTreeMap::new(),
            firing_alerts: 0,
            dropped_alerts: 0,
            total_alerts: 0,
            duplicate_alerts: 0,
            created_at: now,
            updated_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            reopen_count: 0,
            escalation: EscalationPosition::default(),
            snoozed_until: None,
            ack_timeout_at: None,
            auto_resolve_at: None,
            archive_at: None,
            archived: false,
            timeline: VecDeque::new(),
            timeline_total: 0,
            seq: 0,
            timer_generation: 0,
            route,
        }
    }
}

/// The group of an incident opened by hand: its own, so no alert joins it.
pub(crate) fn manual_group_key(id: IncidentId) -> String {
    format!("manual:{id}")
}
