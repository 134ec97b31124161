//! Small builders shared by the service's unit tests.

use std::sync::Arc;

use incidentd_actors::model::{
    Change, IncidentEvent, IncidentId, IncidentStatus, IncidentSummary, Severity, Timestamp,
};

/// The integration tests' schema validator, compiled here too so that the
/// unit tests check emitted events with the same code.
#[path = "../tests/common/schemas.rs"]
pub mod event_schemas;

#[path = "../tests/common/checkout.rs"]
pub mod checkout;

pub fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A plain triggered incident; tests set what they need with `..summary(id)`.
pub fn summary(id: IncidentId) -> IncidentSummary {
    IncidentSummary {
        id,
        tenant: "t".into(),
        group_key: "g".into(),
        title: "t".into(),
        severity: Severity::Info,
        status: IncidentStatus::Triggered,
        service: None,
        team: None,
        assignee: None,
        labels: Default::default(),
        alert_count: 1,
        firing_alerts: 1,
        total_alerts: 1,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
        acknowledged_at: None,
        resolved_at: None,
        reopen_count: 0,
        seq: 1,
    }
}

/// Event `seq` of `summary`'s incident.
pub fn event(summary: IncidentSummary, seq: u64, change: Change) -> IncidentEvent {
    IncidentEvent {
        id: IncidentEvent::event_id(summary.id, seq),
        incident_id: summary.id,
        tenant: summary.tenant.clone(),
        group_key: summary.group_key.clone(),
        seq,
        time: Timestamp(0),
        kind: change.kind(),
        actor: "a".into(),
        change,
        incident: Arc::new(IncidentSummary { seq, ..summary }),
    }
}
