//! What one batch of messages asks of intake, in message order: runs of
//! alerts submitted together, and PagerDuty acknowledges between them, so
//! a trigger and its acknowledge in one batch are applied in that order.

use incidentd_actors::model::{Alert, CommandError};

use crate::ingest::SourceInput;
use crate::intake::Intake;

#[derive(Debug, PartialEq)]
pub enum Step {
    Alerts(Vec<Alert>),
    /// Acknowledges the incident of the probe's group, as the actor.
    Acknowledge(Box<Alert>, String),
}

/// The steps of a batch's decoded messages, in order.
pub fn steps(inputs: Vec<SourceInput>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut alerts = Vec::new();
    for input in inputs {
        alerts.extend(input.alerts);
        for (probe, actor) in input.acknowledges {
            if !alerts.is_empty() {
                steps.push(Step::Alerts(std::mem::take(&mut alerts)));
            }
            steps.push(Step::Acknowledge(Box::new(probe), actor));
        }
    }
    if !alerts.is_empty() {
        steps.push(Step::Alerts(alerts));
    }
    steps
}

/// Applies the steps; Ok once every effect is durable. An error is
/// transient (store, engine or cluster unavailable): the batch may be
/// tried again.
pub async fn apply(intake: &Intake, steps: Vec<Step>) -> Result<(), String> {
    for step in steps {
        match step {
            Step::Alerts(alerts) => intake.submit(alerts).await.map_err(|e| e.to_string())?,
            Step::Acknowledge(probe, actor) => {
                match intake.acknowledge_group(*probe, &actor).await {
                    // `false`: the group has no incident (any more); as on
                    // HTTP, nothing to acknowledge is not worth a retry.
                    Ok(_) => {}
                    Err(CommandError::Unavailable(e)) => return Err(e),
                    // Not found or invalid now stays so on a retry.
                    Err(e) => tracing::debug!(error = %e, "pulsar: acknowledge not applied"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(name: &str) -> Alert {
        let labels = BTreeMap::from([("alertname".to_string(), name.to_string())]);
        Alert::firing(labels)
    }

    fn input(alerts: &[&str], acknowledges: &[&str]) -> SourceInput {
        SourceInput {
            alerts: alerts.iter().map(|n| alert(n)).collect(),
            acknowledges: acknowledges
                .iter()
                .map(|n| (alert(n), "pd".to_string()))
                .collect(),
            problem: None,
        }
    }

    #[test]
    fn alerts_run_together_until_an_acknowledge() {
        let steps = steps(vec![
            input(&["a"], &[]),
            input(&["b"], &[]),
            input(&[], &["b"]),
            input(&[], &[]),
            input(&["c"], &[]),
        ]);
        assert_eq!(
            steps,
            vec![
                Step::Alerts(vec![alert("a"), alert("b")]),
                Step::Acknowledge(Box::new(alert("b")), "pd".into()),
                Step::Alerts(vec![alert("c")]),
            ]
        );
    }

    #[test]
    fn nothing_usable_is_no_step() {
        assert!(steps(vec![input(&[], &[]), input(&[], &[])]).is_empty());
    }
}
