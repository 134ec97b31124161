use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::escalation::EscalationPolicies;
use crate::model::{Alert, CompactString};

use super::{Matcher, RouteConfig, RouteSettings, SeverityPolicies};

/// A problem with one route, named by its place in the tree and its id.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{path}: {message}")]
pub struct RouteError {
    pub path: String,
    pub message: String,
}

/// Where an alert goes: the route's settings, its tenant and its group key.
#[derive(Clone, Debug)]
pub struct Routed {
    pub settings: Arc<RouteSettings>,
    pub tenant: CompactString,
    pub group_key: String,
}

enum GroupBy {
    Labels(Vec<String>),
    /// `["..."]`: every label of the alert.
    All,
}

struct Node {
    settings: Arc<RouteSettings>,
    matchers: Vec<Matcher>,
    group_by: Arc<GroupBy>,
    continue_matching: bool,
    children: Vec<Node>,
}

/// The compiled routing tree; see [`RouteConfig`] for its semantics.
pub struct RoutingTree {
    root: Node,
}

impl RoutingTree {
    /// Checks and compiles the whole tree, reporting every problem found.
    pub fn new(
        root: &RouteConfig,
        policies: &EscalationPolicies,
    ) -> Result<RoutingTree, Vec<RouteError>> {
        let defaults = RouteSettings {
            route_id: "root".into(),
            tenant: None,
            service: None,
            team: None,
            policies: SeverityPolicies::default(),
            dedup_window: Duration::from_secs(5 * 60),
            ack_timeout: Duration::ZERO,
            auto_resolve: true,
            auto_resolve_grace: Duration::from_secs(5 * 60),
            reopen_window: Duration::from_secs(30 * 60),
        };
        let default_group_by = Arc::new(GroupBy::Labels(vec!["alertname".into()]));
        let mut compiler = Compiler {
            policies,
            seen_ids: HashSet::new(),
            errors: Vec::new(),
        };
        let root = compiler.compile(root, "routing", true, &defaults, &default_group_by);
        if compiler.errors.is_empty() {
            Ok(RoutingTree { root })
        } else {
            Err(compiler.errors)
        }
    }

    /// Every route the alert belongs to (more than one only through `continue`).
    pub fn route(&self, alert: &Alert) -> Vec<Routed> {
        let mut out = Vec::with_capacity(1);
        self.root.collect(alert, &mut out);
        out
    }
}

impl Node {
    /// `self` matched: the deepest matching descendants win, else `self`.
    fn collect(&self, alert: &Alert, out: &mut Vec<Routed>) {
        let mut child_matched = false;
        for child in &self.children {
            if child.matchers.iter().all(|m| m.matches(alert)) {
                child_matched = true;
                child.collect(alert, out);
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !child_matched {
            out.push(Routed {
                settings: self.settings.clone(),
                tenant: self
                    .settings
                    .tenant
                    .as_deref()
                    .map_or_else(|| alert.tenant.clone(), CompactString::from),
                group_key: self.group_key(alert),
            });
        }
    }

    /// `route:{name="value",...}` with values escaped, so two different label
    /// sets can never give the same key.
    fn group_key(&self, alert: &Alert) -> String {
        let mut key = String::with_capacity(64);
        key.push_str(&self.settings.route_id);
        key.push_str(":{");
        let mut push = |i: usize, name: &str, value: &str| {
            if i > 0 {
                key.push(',');
            }
            let _ = write!(key, "{name}=\"");
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    key.push('\\');
                }
                key.push(c);
            }
            key.push('"');
        };
        match self.group_by.as_ref() {
            GroupBy::Labels(names) => {
                for (i, name) in names.iter().enumerate() {
                    push(
                        i,
                        name,
                        alert
                            .labels
                            .get(name.as_str())
                            .map_or("", |value| value.as_str()),
                    );
                }
            }
            GroupBy::All => {
                for (i, (name, value)) in alert.labels.iter().enumerate() {
                    push(i, name, value);
                }
            }
        }
        key.push('}');
        key
    }
}

struct Compiler<'a> {
    policies: &'a EscalationPolicies,
    seen_ids: HashSet<String>,
    errors: Vec<RouteError>,
}

impl Compiler<'_> {
    fn compile(
        &mut self,
        config: &RouteConfig,
        path: &str,
        is_root: bool,
        parent: &RouteSettings,
        parent_group_by: &Arc<GroupBy>,
    ) -> Node {
        let id = match (&config.id, is_root) {
            (Some(id), _) => id.trim().to_string(),
            (None, true) => "root".to_string(),
            (None, false) => String::new(),
        };
        let place = if id.is_empty() {
            path.to_string()
        } else {
            format!("{path} (id {id:?})")
        };
        let mut error = |message: String| {
            self.errors.push(RouteError {
                path: place.clone(),
                message,
            })
        };
        if is_root && (!config.matchers.is_empty() || config.continue_matching) {
            error(
                "the root route matches every alert: it takes no `matchers` and no `continue`"
                    .into(),
            );
        }
        if id.is_empty() {
            error("every route needs a non-empty `id`".into());
        } else if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            // The id starts every group key; keeping `:` and quotes out of it
            // keeps keys unambiguous.
            error(format!(
                "route id {id:?} may only use letters, digits, '-', '_' and '.'"
            ));
        } else if !self.seen_ids.insert(id.clone()) {
            error(format!("route id {id:?} is used by more than one route"));
        }
        let mut matchers = Vec::new();
        for text in &config.matchers {
            match Matcher::parse(text) {
                Ok(m) => matchers.push(m),
                Err(e) => error(e.to_string()),
            }
        }
        let policies = config
            .policies
            .as_ref()
            .map(|own| parent.policies.merged_with(own))
            .unwrap_or_else(|| parent.policies.clone());
        if let Some(own) = &config.policies {
            for (severity, policy) in own.named() {
                if !self.policies.contains(policy) {
                    let known: Vec<&str> = self.policies.ids().collect();
                    let known = if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    };
                    error(format!(
                        "unknown escalation policy {policy:?} for severity {severity}; known policies: {known}"
                    ));
                }
            }
        }
        let group_by = match &config.group_by {
            None => parent_group_by.clone(),
            Some(labels) if labels.len() == 1 && labels[0] == "..." => Arc::new(GroupBy::All),
            Some(labels) => {
                for label in labels {
                    let valid = label.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        error(format!(
                            "group_by label {label:?} is not a valid label name"
                        ));
                    }
                }
                Arc::new(GroupBy::Labels(labels.clone()))
            }
        };
        let settings = RouteSettings {
            route_id: id,
            tenant: config.tenant.clone().or_else(|| parent.tenant.clone()),
            service: config.service.clone().or_else(|| parent.service.clone()),
            team: config.team.clone().or_else(|| parent.team.clone()),
            policies,
            dedup_window: config.dedup_window.unwrap_or(parent.dedup_window),
            ack_timeout: config.ack_timeout.unwrap_or(parent.ack_timeout),
            auto_resolve: config.auto_resolve.unwrap_or(parent.auto_resolve),
            auto_resolve_grace: config
                .auto_resolve_grace
                .unwrap_or(parent.auto_resolve_grace),
            reopen_window: config.reopen_window.unwrap_or(parent.reopen_window),
        };
        let children = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, child)| {
                self.compile(
                    child,
                    &format!("{path}.routes[{i}]"),
                    false,
                    &settings,
                    &group_by,
                )
            })
            .collect();
        Node {
            settings: Arc::new(settings),
            matchers,
            group_by,
            continue_matching: config.continue_matching,
            children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::{EscalationPolicy, EscalationStep};
    use crate::model::Severity;
    use crate::test_support::alert;

    const TREE: &str = r#"
        group_by = ["alertname", "cluster"]
        dedup_window = "2m"
        policies = { default = "ops" }

        [[routes]]
        id = "db"
        matchers = ['team="db"']
        team = "db"
        service = "postgres"
        policies = { critical = "db-page" }
        ack_timeout = "30m"

          [[routes.routes]]
          id = "db-replica"
          matchers = ['role=~"replica|standby"']
          group_by = ["..."]

        [[routes]]
        id = "web"
        matchers = ['team="web"']
        team = "web"
        continue = true

        [[routes]]
        id = "audit"
        matchers = ['env="prod"']
        tenant = "audit"
    "#;

    fn policies(ids: &[&str]) -> EscalationPolicies {
        EscalationPolicies::new(
            ids.iter()
                .map(|id| EscalationPolicy {
                    id: id.to_string(),
                    repeat: 0,
                    steps: vec![EscalationStep {
                        escalate_after: Duration::from_secs(60),
                        targets: vec!["user:x".into()],
                        channels: vec!["log".into()],
                    }],
                })
                .collect(),
        )
        .unwrap()
    }

    fn tree() -> RoutingTree {
        let config: RouteConfig = toml::from_str(TREE).unwrap();
        RoutingTree::new(&config, &policies(&["ops", "db-page"])).unwrap()
    }

    fn ids(routed: &[Routed]) -> Vec<&str> {
        routed
            .iter()
            .map(|r| r.settings.route_id.as_str())
            .collect()
    }

    #[test]
    fn child_inherits_and_overrides() {
        let routed = tree().route(&alert(&[
            ("alertname", "Lag"),
            ("team", "db"),
            ("cluster", "eu1"),
        ]));
        assert_eq!(ids(&routed), vec!["db"]);
        let s = &routed[0].settings;
        assert_eq!(s.team.as_deref(), Some("db"));
        assert_eq!(
            s.dedup_window,
            Duration::from_secs(120),
            "inherited from the root"
        );
        assert_eq!(s.ack_timeout, Duration::from_secs(1800));
        assert_eq!(s.policies.for_severity(Severity::Critical), Some("db-page"));
        assert_eq!(
            s.policies.for_severity(Severity::Warning),
            Some("ops"),
            "merged per key"
        );
        assert_eq!(routed[0].group_key, r#"db:{alertname="Lag",cluster="eu1"}"#);
    }

    #[test]
    fn nested_route_wins_and_can_group_by_all_labels() {
        let routed = tree().route(&alert(&[
            ("alertname", "Lag"),
            ("team", "db"),
            ("role", "standby"),
        ]));
        assert_eq!(ids(&routed), vec!["db-replica"]);
        assert_eq!(routed[0].settings.service.as_deref(), Some("postgres"));
        assert_eq!(
            routed[0].group_key,
            r#"db-replica:{alertname="Lag",role="standby",team="db"}"#
        );
    }

    #[test]
    fn continue_gives_one_result_per_matching_route() {
        let routed = tree().route(&alert(&[
            ("alertname", "Slow"),
            ("team", "web"),
            ("env", "prod"),
        ]));
        assert_eq!(ids(&routed), vec!["web", "audit"]);
        assert_eq!(routed[0].tenant, "default");
        assert_eq!(routed[1].tenant, "audit");
    }

    #[test]
    fn first_match_wins_without_continue() {
        let routed = tree().route(&alert(&[
            ("alertname", "Lag"),
            ("team", "db"),
            ("env", "prod"),
        ]));
        assert_eq!(ids(&routed), vec!["db"]);
    }

    #[test]
    fn unmatched_alerts_fall_back_to_the_root() {
        let routed = tree().route(&alert(&[("alertname", "Other")]));
        assert_eq!(ids(&routed), vec!["root"]);
        assert_eq!(
            routed[0].group_key,
            r#"root:{alertname="Other",cluster=""}"#
        );
    }

    #[test]
    fn group_keys_differ_for_different_values_even_with_quotes() {
        let t = tree();
        let a = t.route(&alert(&[("alertname", "a\",cluster=\"b")]));
        let b = t.route(&alert(&[("alertname", "a"), ("cluster", "b")]));
        assert_ne!(a[0].group_key, b[0].group_key);
    }

    #[test]
    fn every_config_error_is_reported_with_its_route() {
        let config: RouteConfig = toml::from_str(
            r#"
            [[routes]]
            matchers = ['team="db"']
            [[routes]]
            id = "db"
            matchers = ['env=~"("']
            policies = { critical = "pager" }
              [[routes.routes]]
              id = "db"
              group_by = ["bad-label"]
            "#,
        )
        .unwrap();
        let errors: Vec<String> = RoutingTree::new(&config, &policies(&["ops"]))
            .err()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert_eq!(
            errors[0],
            "routing.routes[0]: every route needs a non-empty `id`"
        );
        assert!(
            errors[1].starts_with("routing.routes[1] (id \"db\"): invalid matcher"),
            "{}",
            errors[1]
        );
        assert_eq!(
            errors[2],
            "routing.routes[1] (id \"db\"): unknown escalation policy \"pager\" for severity critical; known policies: ops"
        );
        assert_eq!(errors[3], "routing.routes[1].routes[0] (id \"db\"): route id \"db\" is used by more than one route");
        assert!(
            errors[4].contains("\"bad-label\" is not a valid label name"),
            "{}",
            errors[4]
        );
    }

    #[test]
    fn root_takes_no_matchers() {
        let config: RouteConfig = toml::from_str("matchers = ['team=\"db\"']").unwrap();
        let errors = RoutingTree::new(&config, &policies(&[])).err().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("routing (id \"root\"): the root route"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<RouteConfig>("group_by = []\ngroupby = [\"x\"]").unwrap_err();
        assert!(err.to_string().contains("groupby"), "{err}");
    }
}
