//! PagerDuty Events API v2 (`POST /v2/enqueue`): trigger, acknowledge, resolve.

use chrono::DateTime;
use incidentd_actors::model::{Alert, CompactString, Labels, Severity, Timestamp};
use serde_json::{Map, Value};

const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;
const MAX_ROUTING_KEY: usize = 128;

#[derive(Debug, PartialEq)]
pub enum PagerDutyEvent {
    Trigger {
        routing_key: String,
        dedup_key: String,
        alert: Box<Alert>,
    },
    Acknowledge {
        routing_key: String,
        dedup_key: String,
    },
    Resolve {
        routing_key: String,
        dedup_key: String,
    },
}

/// What PagerDuty answers with 400: a message and every problem found.
#[derive(Debug, PartialEq)]
pub struct PagerDutyError {
    pub message: String,
    pub errors: Vec<String>,
}

fn invalid(errors: Vec<String>) -> PagerDutyError {
    PagerDutyError {
        message: "Event object is invalid".into(),
        errors,
    }
}

pub fn decode_pagerduty(body: &[u8], now: Timestamp) -> Result<PagerDutyEvent, PagerDutyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| PagerDutyError {
        message: "Event object is invalid".into(),
        errors: vec![format!(
            "malformed JSON at line {} column {}",
            e.line(),
            e.column()
        )],
    })?;
    let Some(event) = value.as_object() else {
        return Err(invalid(vec!["the event must be a JSON object".into()]));
    };
    let mut errors = Vec::new();
    let routing_key = required_string(event, "routing_key", MAX_ROUTING_KEY, &mut errors);
    let action = required_string(event, "event_action", usize::MAX, &mut errors);
    let dedup_key = optional_string(event, "dedup_key", &mut errors);
    if dedup_key.as_ref().is_some_and(|k| k.len() > MAX_DEDUP_KEY) {
        errors.push(format!(
            "'dedup_key' is longer than {MAX_DEDUP_KEY} characters"
        ));
    }
    let event = match action.as_deref() {
        Some("trigger") => {
            let alert = trigger_alert(event, now, &mut errors);
            let dedup_key = dedup_key.unwrap_or_else(|| ulid::Ulid::new().to_string());
            alert.map(|mut alert| {
                alert.fingerprint = dedup_key.as_str().into();
                alert.labels.insert(
                    "pagerduty_routing_key".into(),
                    routing_key.as_deref().unwrap_or_default().into(),
                );
                // In PagerDuty one dedup key is one alert: naming the alert by
                // it keeps unrelated events apart under the default grouping
                // (by `alertname`); routes can still group by source etc.
                alert
                    .labels
                    .insert("alertname".into(), dedup_key.as_str().into());
                PagerDutyEvent::Trigger {
                    routing_key: routing_key.clone().unwrap_or_default(),
                    dedup_key,
                    alert: Box::new(alert),
                }
            })
        }
        Some(action @ ("acknowledge" | "resolve")) => match dedup_key {
            None => {
                errors.push(format!("'dedup_key' is required to {action}"));
                None
            }
            Some(dedup_key) => {
                let routing_key = routing_key.clone().unwrap_or_default();
                Some(if action == "acknowledge" {
                    PagerDutyEvent::Acknowledge {
                        routing_key,
                        dedup_key,
                    }
                } else {
                    PagerDutyEvent::Resolve {
                        routing_key,
                        dedup_key,
                    }
                })
            }
        },
        Some(other) => {
            errors.push(format!(
                "'event_action' {other:?} is not one of trigger, acknowledge, resolve"
            ));
            None
        }
        None => None,
    };
    match event {
        Some(event) if errors.is_empty() => Ok(event),
        _ => Err(invalid(errors)),
    }
}

fn required_string(
    object: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<String>,
) -> Option<String> {
    match object.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if s.len() > max {
                errors.push(format!("'{field}' is longer than {max} characters"));
            }
            Some(s.clone())
        }
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errors.push(format!("'{field}' is missing or blank"));
            None
        }
        Some(_) => {
            errors.push(format!("'{field}' must be a string"));
            None
        }
    }
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("'{field}' must be a string"));
            None
        }
    }
}

fn trigger_alert(
    event: &Map<String, Value>,
    now: Timestamp,
    errors: &mut Vec<String>,
) -> Option<Alert> {
    let Some(payload) = event.get("payload").and_then(Value::as_object) else {
        errors.push("'payload' is missing or not an object".into());
        return None;
    };
    let before = errors.len();
    let mut field_errors = Vec::new();
    let summary = required_string(payload, "summary", MAX_SUMMARY, &mut field_errors);
    let source = required_string(payload, "source", usize::MAX, &mut field_errors);
    let severity = required_string(payload, "severity", usize::MAX, &mut field_errors);
    errors.extend(
        field_errors
            .into_iter()
            .map(|e| e.replacen('\'', "'payload.", 1)),
    );
    let severity = severity.and_then(|s| match s.parse::<Severity>() {
        Ok(severity) => Some(severity),
        Err(_) => {
            errors.push(format!(
                "'payload.severity' {s:?} is not one of critical, error, warning, info"
            ));
            None
        }
    });
    let timestamp = match payload.get("timestamp").and_then(Value::as_str) {
        None => None,
        Some(text) => match parse_iso8601(text) {
            Some(t) => Some(t),
            None => {
                errors.push(format!(
                    "'payload.timestamp' {text:?} is not an ISO 8601 time"
                ));
                None
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    let mut labels = Labels::from([("source".into(), source?.into())]);
    for key in ["component", "group", "class"] {
        if let Some(Value::String(v)) = payload.get(key) {
            labels.insert(key.into(), v.into());
        }
    }
    // Gathered, then sorted once: a body may hold many thousands of
    // details or links, and inserting each into sorted labels in turn
    // would move the others every time. A name given twice keeps its
    // last value, as with one insert after another.
    let mut annotations: Vec<(CompactString, CompactString)> = Vec::new();
    if let Some(Value::Object(details)) = payload.get("custom_details") {
        for (key, value) in details {
            let text = match value {
                Value::String(s) => s.into(),
                other => other.to_string().into(),
            };
            annotations.push((key.into(), text));
        }
    }
    for key in ["client", "client_url"] {
        if let Some(Value::String(v)) = event.get(key) {
            annotations.push((key.into(), v.into()));
        }
    }
    if let Some(Value::Array(links)) = event.get("links") {
        for (i, link) in links.iter().enumerate() {
            if let Some(href) = link.get("href").and_then(Value::as_str) {
                annotations.push((format!("link_{i}").into(), href.into()));
            }
        }
    }
    let mut alert = Alert::firing(labels);
    alert.severity = severity?;
    alert.summary = summary?.into();
    alert.annotations = annotations.into_iter().collect();
    alert.starts_at = Some(timestamp.unwrap_or(now));
    alert.source = "pagerduty".into();
    Some(alert)
}

/// RFC 3339, or ISO 8601 with a `+0000` offset as PagerDuty's own examples use.
fn parse_iso8601(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text).ok().or_else(|| {
        DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
            .ok()
            .map(|dt| Timestamp(dt.timestamp_millis()))
    })
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::AlertStatus;

    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    /// The trigger example from the PagerDuty Events API v2 documentation.
    const TRIGGER: &str = r#"{
      "payload": {
        "summary": "Example alert on host1.example.com",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "severity": "info",
        "source": "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "deploy",
        "custom_details": {"ping time": "1500ms", "load avg": 0.75}
      },
      "routing_key": "samplekeyhere",
      "dedup_key": "samplekeyhere",
      "images": [{"src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png", "href": "https://example.com/", "alt": "Example text"}],
      "links": [{"href": "https://example.com/", "text": "Link text"}],
      "event_action": "trigger",
      "client": "Sample Monitoring Service",
      "client_url": "https://monitoring.service.com"
    }"#;

    #[test]
    fn documented_trigger_decodes() {
        let PagerDutyEvent::Trigger {
            routing_key,
            dedup_key,
            alert,
        } = decode_pagerduty(TRIGGER.as_bytes(), NOW).unwrap()
        else {
            panic!("a trigger");
        };
        assert_eq!(
            (routing_key.as_str(), dedup_key.as_str()),
            ("samplekeyhere", "samplekeyhere")
        );
        assert_eq!(alert.fingerprint, "samplekeyhere");
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.severity, Severity::Info);
        assert_eq!(alert.labels["component"], "postgres");
        assert_eq!(alert.labels["pagerduty_routing_key"], "samplekeyhere");
        assert_eq!(alert.labels["alertname"], "samplekeyhere");
        assert_eq!(alert.annotations["load avg"], "0.75");
        assert_eq!(alert.annotations["ping time"], "1500ms");
        assert_eq!(alert.annotations["link_0"], "https://example.com/");
        assert_eq!(
            alert.starts_at,
            Some(Timestamp::parse_rfc3339("2015-07-17T08:42:58.315Z").unwrap())
        );
        assert!(alert.validate().is_ok());
    }

    #[test]
    fn acknowledge_and_resolve_need_a_dedup_key() {
        let ack = decode_pagerduty(
            br#"{"routing_key": "r", "event_action": "acknowledge", "dedup_key": "d"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            ack,
            PagerDutyEvent::Acknowledge {
                routing_key: "r".into(),
                dedup_key: "d".into()
            }
        );
        let resolve = decode_pagerduty(
            br#"{"routing_key": "r", "event_action": "resolve", "dedup_key": "d"}"#,
            NOW,
        )
        .unwrap();
        assert!(matches!(resolve, PagerDutyEvent::Resolve { .. }));
        let err = decode_pagerduty(br#"{"routing_key": "r", "event_action": "resolve"}"#, NOW)
            .unwrap_err();
        assert_eq!(err.errors, vec!["'dedup_key' is required to resolve"]);
    }

    #[test]
    fn trigger_without_dedup_key_gets_one() {
        let body = br#"{"routing_key": "r", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "critical"}}"#;
        let PagerDutyEvent::Trigger {
            dedup_key, alert, ..
        } = decode_pagerduty(body, NOW).unwrap()
        else {
            panic!()
        };
        assert_eq!(dedup_key.len(), 26);
        assert_eq!(alert.fingerprint, dedup_key);
    }

    /// Annotations are gathered and sorted once; what they hold is as if
    /// each was set in turn: the event's `client` after the details' one,
    /// and every link under its own index.
    #[test]
    fn details_client_and_links_become_annotations() {
        let links: Vec<String> = (0..12)
            .map(|i| format!(r#"{{"href": "https://example.com/{i}"}}"#))
            .collect();
        let body = format!(
            r#"{{"routing_key": "r", "event_action": "trigger", "client": "from the event",
                "links": [{}],
                "payload": {{"summary": "s", "source": "h", "severity": "critical",
                             "custom_details": {{"client": "from the details", "zone": "b"}}}}}}"#,
            links.join(",")
        );
        let PagerDutyEvent::Trigger { alert, .. } = decode_pagerduty(body.as_bytes(), NOW).unwrap()
        else {
            panic!("a trigger")
        };
        assert_eq!(alert.annotations["client"], "from the event");
        assert_eq!(alert.annotations["zone"], "b");
        assert_eq!(alert.annotations["link_10"], "https://example.com/10");
        assert_eq!(alert.annotations["link_2"], "https://example.com/2");
        assert_eq!(alert.annotations.len(), 2 + 12);
        let names: Vec<_> = alert.annotations.keys().collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    }

    #[test]
    fn every_error_is_collected() {
        let body = br#"{"event_action": "trigger", "dedup_key": 7, "payload": {"summary": "", "severity": "fatal", "timestamp": "soon"}}"#;
        let err = decode_pagerduty(body, NOW).unwrap_err();
        assert_eq!(err.message, "Event object is invalid");
        assert_eq!(
            err.errors,
            vec![
                "'routing_key' is missing or blank",
                "'dedup_key' must be a string",
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' \"fatal\" is not one of critical, error, warning, info",
                "'payload.timestamp' \"soon\" is not an ISO 8601 time",
            ]
        );
        let err =
            decode_pagerduty(br#"{"routing_key": "r", "event_action": "page"}"#, NOW).unwrap_err();
        assert!(err.errors[0].contains("\"page\" is not one of"));
        assert!(decode_pagerduty(b"{", NOW).unwrap_err().errors[0].starts_with("malformed JSON"));
    }
}
