use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SeverityPolicies;

/// One route of the routing tree; the `[routing]` table is the root route.
/// A field left out is inherited from the parent route (the root's defaults
/// are given on each field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name of the route, part of every group key it makes. Required on
    /// every route but the root, which is called "root".
    pub id: Option<String>,
    /// Label matchers in Alertmanager syntax (`team="db"`, `env=~"prod|staging"`,
    /// `severity!="info"`); all must match. The root matches every alert.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Keep looking at the following sibling routes after this one matched;
    /// the alert then joins one incident per matching route.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Tenant of the incidents; default: the alert's own tenant.
    pub tenant: Option<String>,
    /// Service the incidents are about.
    pub service: Option<String>,
    /// Team that owns the incidents.
    pub team: Option<String>,
    /// Escalation policy by severity, e.g. `{ critical = "db-page", default = "db-ticket" }`;
    /// entries merge with the parent's. Default: none (no escalation).
    pub policies: Option<SeverityPolicies>,
    /// Labels whose values make the group key: alerts with the same values
    /// share an incident. `["..."]` groups by all labels. Root default: `["alertname"]`.
    pub group_by: Option<Vec<String>>,
    /// Repeats of a known alert inside this window only update counters.
    /// Root default: 5m.
    #[serde(default, with = "humantime_serde")]
    pub dedup_window: Option<Duration>,
    /// An acknowledged incident not resolved within this goes back to
    /// triggered and escalation resumes; "0s" turns it off. Root default: off.
    #[serde(default, with = "humantime_serde")]
    pub ack_timeout: Option<Duration>,
    /// Resolve an incident when all its alerts are resolved. Root default: true.
    pub auto_resolve: Option<bool>,
    /// How long all alerts must stay resolved before auto-resolve; a re-fire
    /// inside it cancels (flap damping). Root default: 5m.
    #[serde(default, with = "humantime_serde")]
    pub auto_resolve_grace: Option<Duration>,
    /// A firing alert within this time after resolve reopens the incident;
    /// after it, a new incident opens. Root default: 30m.
    #[serde(default, with = "humantime_serde")]
    pub reopen_window: Option<Duration>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}
