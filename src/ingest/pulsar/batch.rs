//! What one batch of messages asks of intake, in message order: runs of
//! alerts submitted together, and PagerDuty acknowledges between them, so
//! a trigger and its acknowledge in one batch are applied in that order.

use incidentd_actors::model::{Alert, CommandError};
use incidentd_actors::ports::AlertRecord;

use crate::ingest::SourceInput;
use crate::intake::Intake;

#[derive(Debug, PartialEq)]
pub enum Step {
    /// Alerts, with the message records they were read from.
    Alerts {
        alerts: Vec<Alert>,
        records: Vec<AlertRecord>,
    },
    /// Acknowledges the incident of the probe's group, as the actor.
    Acknowledge(Box<Alert>, String),
}

/// The steps of a batch's decoded messages, in order, each message with its
/// record (`first_alert` is set here).
pub fn steps(inputs: Vec<(SourceInput, AlertRecord)>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut alerts = Vec::new();
    let mut records = Vec::new();
    for (input, mut record) in inputs {
        if !input.alerts.is_empty() {
            record.first_alert = alerts.len();
            records.push(record);
            alerts.extend(input.alerts);
        }
        for (probe, actor) in input.acknowledges {
            if !alerts.is_empty() {
                steps.push(Step::Alerts {
                    alerts: std::mem::take(&mut alerts),
                    records: std::mem::take(&mut records),
                });
            }
            steps.push(Step::Acknowledge(Box::new(probe), actor));
        }
    }
    if !alerts.is_empty() {
        steps.push(Step::Alerts { alerts, records });
    }
    steps
}

/// Applies the steps; Ok once every effect is durable. An error is
/// transient (store, engine or cluster unavailable): the batch may be
/// tried again.
pub async fn apply(intake: &Intake, steps: Vec<Step>) -> Result<(), String> {
    for step in steps {
        match step {
            Step::Alerts { alerts, records } => intake
                .submit_read(alerts, records)
                .await
                .map_err(|e| e.to_string())?,
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
    use incidentd_actors::model::Labels;

    use super::*;

    fn alert(name: &str) -> Alert {
        let labels = Labels::from([("alertname".into(), name.into())]);
        Alert::firing(labels)
    }

    /// The record of message `entry`, its alerts starting at `first_alert`
    /// of their step.
    fn record(entry: u64, first_alert: usize) -> AlertRecord {
        AlertRecord::new(first_alert, "alerts", &[entry], None)
    }

    /// Message `entry` with alerts and acknowledges named by alertname.
    fn input(entry: u64, alerts: &[&str], acknowledges: &[&str]) -> (SourceInput, AlertRecord) {
        let input = SourceInput {
            alerts: alerts.iter().map(|n| alert(n)).collect(),
            acknowledges: acknowledges
                .iter()
                .map(|n| (alert(n), "pd".to_string()))
                .collect(),
            problem: None,
        };
        (input, record(entry, 0))
    }

    #[test]
    fn alerts_run_together_until_an_acknowledge() {
        let steps = steps(vec![
            input(1, &["a"], &[]),
            input(2, &["b", "b2"], &[]),
            input(3, &[], &["b"]),
            input(4, &[], &[]),
            input(5, &["c"], &[]),
        ]);
        assert_eq!(
            steps,
            vec![
                Step::Alerts {
                    alerts: vec![alert("a"), alert("b"), alert("b2")],
                    records: vec![record(1, 0), record(2, 1)],
                },
                Step::Acknowledge(Box::new(alert("b")), "pd".into()),
                Step::Alerts {
                    alerts: vec![alert("c")],
                    records: vec![record(5, 0)],
                },
            ]
        );
    }

    #[test]
    fn nothing_usable_is_no_step() {
        assert!(steps(vec![input(1, &[], &[]), input(2, &[], &[])]).is_empty());
    }
}
