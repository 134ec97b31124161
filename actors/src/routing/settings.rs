use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Severity;

/// Escalation policy ids by severity, with a fallback for the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SeverityPolicies {
    pub critical: Option<String>,
    pub error: Option<String>,
    pub warning: Option<String>,
    pub info: Option<String>,
    /// Used for any severity without its own entry.
    pub default: Option<String>,
}

impl SeverityPolicies {
    pub fn for_severity(&self, severity: Severity) -> Option<&str> {
        let own = match severity {
            Severity::Critical => &self.critical,
            Severity::Error => &self.error,
            Severity::Warning => &self.warning,
            Severity::Info => &self.info,
        };
        own.as_deref().or(self.default.as_deref())
    }

    /// Entries of `child` replace those of `self`; unset ones are inherited.
    pub fn merged_with(&self, child: &SeverityPolicies) -> SeverityPolicies {
        SeverityPolicies {
            critical: child.critical.clone().or_else(|| self.critical.clone()),
            error: child.error.clone().or_else(|| self.error.clone()),
            warning: child.warning.clone().or_else(|| self.warning.clone()),
            info: child.info.clone().or_else(|| self.info.clone()),
            default: child.default.clone().or_else(|| self.default.clone()),
        }
    }

    /// Every policy id named, with the severity key naming it.
    pub fn named(&self) -> BTreeMap<&'static str, &str> {
        [
            ("critical", &self.critical),
            ("error", &self.error),
            ("warning", &self.warning),
            ("info", &self.info),
            ("default", &self.default),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// What a route decided for the alerts it matched, with everything inherited
/// from its parents already filled in. Every incident keeps a copy, so a
/// config change does not alter incidents that are already open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteSettings {
    pub route_id: String,
    /// Overrides the alert's tenant when set.
    pub tenant: Option<String>,
    pub service: Option<String>,
    pub team: Option<String>,
    pub policies: SeverityPolicies,
    /// Repeats of a known alert inside this window only update counters.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dedup_window: Duration,
    /// An acknowledged incident not resolved within this goes back to
    /// triggered; zero turns it off.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub ack_timeout: Duration,
    /// Resolve the incident once all its alerts are resolved.
    pub auto_resolve: bool,
    /// How long all alerts must stay resolved before auto-resolve; a re-fire
    /// inside it cancels (flap damping).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub auto_resolve_grace: Duration,
    /// A firing alert within this time after resolve reopens the incident;
    /// later ones open a new incident.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub reopen_window: Duration,
}

impl RouteSettings {
    /// Settings for incidents opened by hand, outside the routing tree.
    pub fn manual() -> Self {
        RouteSettings {
            route_id: "manual".into(),
            tenant: None,
            service: None,
            team: None,
            policies: SeverityPolicies::default(),
            dedup_window: Duration::ZERO,
            ack_timeout: Duration::ZERO,
            auto_resolve: false,
            auto_resolve_grace: Duration::ZERO,
            reopen_window: Duration::ZERO,
        }
    }
}
