// TEMPORARY stand-in until the routing tree lands: root route only.
use std::sync::Arc;

use crate::escalation::EscalationPolicies;
use crate::model::Alert;

use super::{RouteConfig, RouteSettings};

pub struct Routed {
    pub settings: Arc<RouteSettings>,
    pub tenant: String,
    pub group_key: String,
}

pub struct RoutingTree {
    root: Arc<RouteSettings>,
}

impl RoutingTree {
    pub fn new(config: &RouteConfig, _policies: &EscalationPolicies) -> Result<RoutingTree, Vec<String>> {
        Ok(RoutingTree { root: Arc::new(config.0.clone()) })
    }

    pub fn route(&self, alert: &Alert) -> Vec<Routed> {
        vec![Routed {
            settings: self.root.clone(),
            tenant: alert.tenant.clone(),
            group_key: format!("root:{}", alert.labels.get("alertname").cloned().unwrap_or_default()),
        }]
    }
}
