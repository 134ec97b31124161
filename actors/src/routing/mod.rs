//! The routing tree: which tenant, service, team, policies and group an alert belongs to.

mod settings;
mod tree;

pub use settings::{RouteSettings, SeverityPolicies};
pub use tree::{Routed, RoutingTree};
pub struct RouteConfig(pub RouteSettings);
