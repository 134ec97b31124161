//! The routing tree: which tenant, service, team, escalation policies and
//! group (hence incident) an alert belongs to, like Alertmanager's routes.

mod config;
mod matcher;
mod settings;
mod tree;

pub use config::RouteConfig;
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use settings::{RouteSettings, SeverityPolicies};
pub use tree::{RouteError, Routed, RoutingTree};
