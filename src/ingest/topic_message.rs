//! Turning one message of an alert topic into engine input, by the topic's
//! format. Kafka and Pulsar sources decode alike; what they do with the
//! result (re-key onto Kafka, or hand to intake) is theirs.

use incidentd_actors::model::{Alert, Timestamp};
use incidentd_actors::ports::StoreError;
use serde::{Deserialize, Serialize};

use super::pagerduty_keys::KeyLookupError;

use super::{
    decode_alertmanager_webhook, decode_native_json, decode_native_ndjson, decode_pagerduty,
    Decoded, PagerDutyAction, PagerDutyKeys,
};

/// Message formats of alert topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// incidentd's own alert JSON: one object, an array, or NDJSON lines.
    Native,
    /// Alertmanager webhook payload, version 4.
    AlertmanagerWebhook,
    /// PagerDuty Events API v2 event.
    Pagerduty,
}

/// What one message asks for.
#[derive(Debug, Default)]
pub struct SourceInput {
    pub alerts: Vec<Alert>,
    /// PagerDuty acknowledges: (probe alert of the group, actor).
    pub acknowledges: Vec<(Alert, String)>,
    /// Why part or all of the message could not be used; the message then
    /// also goes to the dead-letter topic.
    pub problem: Option<String>,
}

/// Decodes a message. `tenant` is given to alerts whose format names none.
/// A PagerDuty acknowledge or resolve reads its trigger's key from the
/// store when it is not in memory; when the store cannot be asked the
/// answer is an error: nothing is wrong with the message, so the caller
/// holds it and decodes it again later rather than dead-lettering it.
pub async fn decode_source(
    format: SourceFormat,
    payload: &[u8],
    tenant: &str,
    pagerduty: &PagerDutyKeys,
) -> Result<SourceInput, StoreError> {
    let input = match format {
        SourceFormat::Native => {
            // One JSON value (object or array) first; several lines that
            // are not one value are NDJSON.
            let decoded = decode_native_json(payload).or_else(|json_error| {
                let lines = payload
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.trim_ascii().is_empty());
                if lines.count() > 1 {
                    decode_native_ndjson(payload)
                } else {
                    Err(json_error)
                }
            });
            from_decoded(decoded.map_err(|e| e.to_string()), |_| {})
        }
        SourceFormat::AlertmanagerWebhook => from_decoded(
            decode_alertmanager_webhook(payload).map_err(|e| e.to_string()),
            |alert| alert.tenant = tenant.into(),
        ),
        SourceFormat::Pagerduty => {
            let now = Timestamp::from_datetime(chrono::Utc::now());
            let event = match decode_pagerduty(payload, now) {
                Ok(event) => event,
                Err(e) => {
                    return Ok(SourceInput {
                        problem: Some(format!("{}: {}", e.message, e.errors.join("; "))),
                        ..SourceInput::default()
                    })
                }
            };
            match pagerduty.action(event, tenant).await {
                Ok((_, PagerDutyAction::Alert(alert))) => SourceInput {
                    alerts: vec![alert],
                    ..SourceInput::default()
                },
                Ok((_, PagerDutyAction::Acknowledge { probe, actor })) => SourceInput {
                    acknowledges: vec![(probe, actor)],
                    ..SourceInput::default()
                },
                Err(KeyLookupError::Unknown(unknown)) => SourceInput {
                    problem: Some(unknown.to_string()),
                    ..SourceInput::default()
                },
                Err(KeyLookupError::Unavailable(e)) => return Err(e),
            }
        }
    };
    Ok(input)
}

fn from_decoded(decoded: Result<Decoded, String>, fix: impl Fn(&mut Alert)) -> SourceInput {
    match decoded {
        Err(message) => SourceInput {
            problem: Some(message),
            ..SourceInput::default()
        },
        Ok(Decoded {
            mut accepted,
            rejected,
        }) => {
            accepted.iter_mut().for_each(fix);
            let problem = (!rejected.is_empty()).then(|| {
                let items: Vec<String> = rejected
                    .iter()
                    .map(|r| {
                        let errors: Vec<String> = r
                            .errors
                            .iter()
                            .map(|e| format!("{}: {}", e.field, e.message))
                            .collect();
                        format!("item {}: {}", r.index, errors.join(", "))
                    })
                    .collect();
                format!(
                    "{} invalid alert(s) not taken ({} taken): {}",
                    rejected.len(),
                    accepted.len(),
                    items.join("; ")
                )
            });
            SourceInput {
                alerts: accepted,
                acknowledges: Vec::new(),
                problem,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::pagerduty_keys::memory;

    #[tokio::test]
    async fn native_object_array_and_ndjson_decode_and_bad_items_are_named() {
        let keys = memory::keys(10);
        let one = br#"{"status":"firing","labels":{"alertname":"A"}}"#;
        let input = decode_source(SourceFormat::Native, one, "t", &keys)
            .await
            .unwrap();
        assert_eq!((input.alerts.len(), input.problem), (1, None));

        let lines = b"{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"}}\n{\"labels\":{\"alertname\":\"B\"}}\n";
        let input = decode_source(SourceFormat::Native, lines, "t", &keys)
            .await
            .unwrap();
        assert_eq!(input.alerts.len(), 1);
        let problem = input.problem.expect("the line without status is invalid");
        assert!(
            problem.contains("1 invalid alert(s) not taken (1 taken)"),
            "{problem}"
        );

        let garbage = decode_source(SourceFormat::Native, b"{nope", "t", &keys)
            .await
            .unwrap();
        assert!(garbage.alerts.is_empty());
        assert!(garbage.problem.unwrap().contains("malformed JSON"));
    }

    #[tokio::test]
    async fn pagerduty_trigger_then_acknowledge_finds_the_group() {
        let keys = memory::keys(10);
        let trigger = br#"{"routing_key":"r1","event_action":"trigger","dedup_key":"d1","payload":{"summary":"disk full","source":"db1","severity":"critical"}}"#;
        let input = decode_source(SourceFormat::Pagerduty, trigger, "acme", &keys)
            .await
            .unwrap();
        assert_eq!(input.alerts.len(), 1);
        assert_eq!(input.alerts[0].tenant, "acme");

        let ack = br#"{"routing_key":"r1","event_action":"acknowledge","dedup_key":"d1"}"#;
        let input = decode_source(SourceFormat::Pagerduty, ack, "acme", &keys)
            .await
            .unwrap();
        assert_eq!(input.acknowledges.len(), 1);
        assert_eq!(
            input.acknowledges[0].0.labels,
            decode_source(SourceFormat::Pagerduty, trigger, "acme", &keys)
                .await
                .unwrap()
                .alerts[0]
                .labels
        );

        let unknown = br#"{"routing_key":"r1","event_action":"resolve","dedup_key":"nope"}"#;
        let input = decode_source(SourceFormat::Pagerduty, unknown, "acme", &keys)
            .await
            .unwrap();
        assert!(input.problem.unwrap().contains("send a trigger first"));
    }

    #[tokio::test]
    async fn a_pagerduty_resolve_the_store_cannot_look_up_is_to_be_held_not_dead_lettered() {
        let store = std::sync::Arc::new(memory::MemoryTriggerKeys::default());
        store
            .failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let keys = PagerDutyKeys::new(10, std::time::Duration::from_secs(60), store.clone());
        let resolve = br#"{"routing_key":"r1","event_action":"resolve","dedup_key":"d1"}"#;
        let held = decode_source(SourceFormat::Pagerduty, resolve, "acme", &keys).await;
        assert!(held.is_err(), "{held:?}");
        // Once the store answers, the same message is an ordinary unknown key.
        store
            .failing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let input = decode_source(SourceFormat::Pagerduty, resolve, "acme", &keys)
            .await
            .unwrap();
        assert!(input.problem.unwrap().contains("send a trigger first"));
    }

    #[tokio::test]
    async fn alertmanager_webhook_alerts_get_the_default_tenant() {
        let keys = memory::keys(10);
        let payload = br#"{"version":"4","groupKey":"{}:{alertname=\"W1\"}","status":"firing","receiver":"incidentd",
            "groupLabels":{"alertname":"W1"},"commonLabels":{"alertname":"W1"},"commonAnnotations":{},
            "externalURL":"http://alertmanager:9093","alerts":[{"status":"firing","labels":{"alertname":"W1","instance":"i1"},
            "annotations":{},"startsAt":"2026-11-27T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"w1-1"}]}"#;
        let input = decode_source(SourceFormat::AlertmanagerWebhook, payload, "acme", &keys)
            .await
            .unwrap();
        assert_eq!(input.problem, None);
        assert_eq!(input.alerts.len(), 1);
        assert_eq!(input.alerts[0].tenant, "acme");
    }
}
