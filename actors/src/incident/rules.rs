use std::sync::Arc;
use std::time::Duration;

use crate::escalation::EscalationPolicies;
use crate::settings::EngineSettings;

/// Engine-wide settings every incident obeys (route settings travel with
/// each incident; these do not).
#[derive(Clone, Debug)]
pub struct IncidentRules {
    pub policies: Arc<EscalationPolicies>,
    /// Most distinct alerts (fingerprints) kept per incident.
    pub max_alerts_per_incident: usize,
    /// Most timeline entries kept per incident; older ones are dropped.
    pub max_timeline_entries: usize,
    /// A resolved incident with no change for this long is archived and
    /// leaves the live set.
    pub retention: Duration,
}

impl IncidentRules {
    /// The rules `settings` set, with `policies`.
    pub fn new(policies: EscalationPolicies, settings: &EngineSettings) -> Self {
        IncidentRules {
            policies: Arc::new(policies),
            max_alerts_per_incident: settings.max_alerts_per_incident,
            max_timeline_entries: settings.max_timeline_entries,
            retention: settings.retention,
        }
    }
}
