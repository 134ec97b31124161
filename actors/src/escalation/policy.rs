use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One escalation policy: ordered steps, run `1 + repeat` times in all. The
/// first step fires as soon as escalation starts; each step then waits its
/// `escalate_after` before the next one (or the next loop's first) fires,
/// as PagerDuty's escalation rules do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Name routes use to pick this policy.
    pub id: String,
    /// Extra passes through all steps after the first (like PagerDuty's
    /// `num_loops`); 0 runs the steps once.
    #[serde(default)]
    pub repeat: u32,
    pub steps: Vec<EscalationStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// How long after this step fires the next one fires, unless the
    /// incident is acknowledged or resolved by then.
    #[serde(with = "humantime_serde")]
    pub escalate_after: Duration,
    /// Who is notified, e.g. `user:alice` or `team:db`.
    pub targets: Vec<String>,
    /// Notifier channels to use, e.g. `webhook` or `log`.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
}

fn default_channels() -> Vec<String> {
    vec!["log".to_string()]
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("escalation policy {policy:?}: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

/// All configured policies by id.
#[derive(Clone, Debug, Default)]
pub struct EscalationPolicies {
    by_id: BTreeMap<String, EscalationPolicy>,
}

impl EscalationPolicies {
    /// Checks every policy and reports every problem found.
    pub fn new(policies: Vec<EscalationPolicy>) -> Result<Self, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let error = |policy: &str, message: String| PolicyError {
            policy: policy.to_string(),
            message,
        };
        for p in &policies {
            if p.id.trim().is_empty() {
                errors.push(error(&p.id, "id must not be empty".into()));
            }
            if !seen.insert(p.id.clone()) {
                errors.push(error(&p.id, "id is used by more than one policy".into()));
            }
            if p.steps.is_empty() {
                errors.push(error(&p.id, "needs at least one step".into()));
            }
            for (i, step) in p.steps.iter().enumerate() {
                if step.targets.is_empty() {
                    errors.push(error(&p.id, format!("steps[{i}] has no targets")));
                }
                if step.channels.is_empty() {
                    errors.push(error(&p.id, format!("steps[{i}] has no channels")));
                }
            }
        }
        if errors.is_empty() {
            Ok(EscalationPolicies {
                by_id: policies.into_iter().map(|p| (p.id.clone(), p)).collect(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, id: &str) -> Option<&EscalationPolicy> {
        self.by_id.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

impl EscalationPolicy {
    /// The position after (`step`, `loop_index`) fires, if the policy goes on.
    pub fn after(&self, step: u32, loop_index: u32) -> Option<(u32, u32)> {
        let next = step + 1;
        if (next as usize) < self.steps.len() {
            Some((next, loop_index))
        } else if loop_index < self.repeat {
            Some((0, loop_index + 1))
        } else {
            None
        }
    }

    pub fn step(&self, step: u32) -> Option<&EscalationStep> {
        self.steps.get(step as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(id: &str, steps: usize, repeat: u32) -> EscalationPolicy {
        EscalationPolicy {
            id: id.into(),
            repeat,
            steps: (0..steps)
                .map(|i| EscalationStep {
                    escalate_after: Duration::from_secs(60 * (i as u64 + 1)),
                    targets: vec![format!("user:{i}")],
                    channels: default_channels(),
                })
                .collect(),
        }
    }

    #[test]
    fn after_walks_steps_then_loops_then_stops() {
        let p = policy("p", 2, 1);
        assert_eq!(p.after(0, 0), Some((1, 0)));
        assert_eq!(p.after(1, 0), Some((0, 1)));
        assert_eq!(p.after(0, 1), Some((1, 1)));
        assert_eq!(p.after(1, 1), None);
    }

    #[test]
    fn rejects_duplicates_and_empty_policies() {
        let mut empty = policy("b", 0, 0);
        empty.steps.clear();
        let errors =
            EscalationPolicies::new(vec![policy("a", 1, 0), policy("a", 1, 0), empty]).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "escalation policy \"a\": id is used by more than one policy",
                "escalation policy \"b\": needs at least one step",
            ]
        );
    }

    #[test]
    fn parses_from_toml_with_humantime_delays() {
        let p: EscalationPolicy = toml::from_str(
            r#"
            id = "db"
            repeat = 2
            [[steps]]
            escalate_after = "10m"
            targets = ["user:alice"]
            [[steps]]
            escalate_after = "5m"
            targets = ["team:db"]
            channels = ["webhook"]
            "#,
        )
        .unwrap();
        assert_eq!(p.steps[1].escalate_after, Duration::from_secs(300));
        assert_eq!(p.steps[0].channels, vec!["log"]);
        assert!(toml::from_str::<EscalationPolicy>("id = \"x\"\nsteps = []\ntypo = 1").is_err());
    }
}
