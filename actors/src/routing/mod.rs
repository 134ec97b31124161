//! The routing tree: which tenant, service, team, policies and group an alert belongs to.

mod settings;

pub use settings::{RouteSettings, SeverityPolicies};
