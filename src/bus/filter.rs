//! Which incident events a consumer wants: SSE clients (from the query
//! string), event topics (from config) and webhook subscriptions share it.
//! Unset fields match every event.

use incidentd_actors::model::{EventKind, IncidentEvent, Severity};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventFilter {
    /// Only this tenant's incidents.
    pub tenant: Option<String>,
    /// Only incidents of this service.
    pub service: Option<String>,
    /// Only incidents of these severities (critical, error, warning, info).
    pub severities: Vec<Severity>,
    /// Only these event types (created, acknowledged, escalated, ...).
    #[serde(rename = "types")]
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    pub fn matches(&self, event: &IncidentEvent) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == &*event.tenant)
            && self
                .service
                .as_deref()
                .is_none_or(|s| event.service() == Some(s))
            && (self.severities.is_empty() || self.severities.contains(&event.incident.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}
