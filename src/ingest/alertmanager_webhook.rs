//! The Alertmanager webhook receiver payload (version "4").

use incidentd_actors::model::{Alert, AlertStatus, FieldError};
use serde_json::Value;

use super::decoded::{BodyError, Decoded};
use super::fields::{alertmanager_alert, kind, Fields};

pub fn decode_alertmanager_webhook(body: &[u8]) -> Result<Decoded, BodyError> {
    let payload: Value = serde_json::from_slice(body)?;
    let Some(object) = payload.as_object() else {
        return Err(BodyError::Shape(format!(
            "expected a webhook payload object, got {}",
            kind(&payload)
        )));
    };
    match object.get("version").and_then(Value::as_str) {
        Some("4") => {}
        Some(other) => {
            return Err(BodyError::Shape(format!(
                "webhook payload version {other:?} is not supported; expected \"4\""
            )))
        }
        None => {
            return Err(BodyError::Shape(
                "webhook payload has no \"version\"; expected \"4\"".into(),
            ))
        }
    }
    let Some(alerts) = object.get("alerts").and_then(Value::as_array) else {
        return Err(BodyError::Shape(
            "webhook payload has no \"alerts\" array".into(),
        ));
    };
    let mut decoded = Decoded::default();
    for (index, item) in alerts.iter().enumerate() {
        decoded.push(index, webhook_alert(item));
    }
    Ok(decoded)
}

fn webhook_alert(item: &Value) -> Result<Alert, Vec<FieldError>> {
    let mut fields = Fields::of(item)?;
    let status = match fields.string("status").as_deref() {
        Some("firing") => AlertStatus::Firing,
        Some("resolved") => AlertStatus::Resolved,
        Some(other) => {
            fields.errors.push(FieldError::new(
                "status",
                format!("{other:?} is not firing or resolved"),
            ));
            AlertStatus::Firing
        }
        None => {
            fields.errors.push(FieldError::new(
                "status",
                "is required (firing or resolved)",
            ));
            AlertStatus::Firing
        }
    };
    let labels = fields.labels();
    let annotations = fields.string_map("annotations");
    let starts_at = fields.time("startsAt");
    let ends_at = fields.time("endsAt");
    let generator_url = fields.string("generatorURL");
    let fingerprint = fields.string("fingerprint").unwrap_or_default();
    if !fields.errors.is_empty() {
        return Err(fields.errors);
    }
    let mut alert = alertmanager_alert(labels, annotations, "alertmanager-webhook");
    alert.status = status;
    alert.starts_at = starts_at;
    alert.ends_at = ends_at;
    alert.generator_url = generator_url;
    if !fingerprint.is_empty() {
        alert.fingerprint = fingerprint.into();
    }
    Ok(alert.normalized())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload shape from the Alertmanager docs, filled in.
    const EXAMPLE: &str = r#"{
      "version": "4",
      "groupKey": "{}:{alertname=\"InstanceDown\"}",
      "truncatedAlerts": 0,
      "status": "firing",
      "receiver": "incidentd",
      "groupLabels": {"alertname": "InstanceDown"},
      "commonLabels": {"alertname": "InstanceDown", "job": "node"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "InstanceDown", "job": "node", "instance": "a:9100", "severity": "critical"},
         "annotations": {"summary": "a:9100 down"}, "startsAt": "2026-11-27T09:58:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "c0ffee0123456789"},
        {"status": "resolved", "labels": {"alertname": "InstanceDown", "job": "node", "instance": "b:9100"},
         "annotations": {}, "startsAt": "2026-11-27T09:00:00Z", "endsAt": "2026-11-27T09:50:00Z",
         "generatorURL": "http://prometheus:9090/graph", "fingerprint": "feed0123456789ab"}
      ]
    }"#;

    #[test]
    fn documented_payload_decodes() {
        let decoded = decode_alertmanager_webhook(EXAMPLE.as_bytes()).unwrap();
        assert!(decoded.rejected.is_empty());
        let [down, back] = &decoded.accepted[..] else {
            panic!("two alerts")
        };
        assert_eq!(down.fingerprint, "c0ffee0123456789");
        assert_eq!(down.status, AlertStatus::Firing);
        assert_eq!(down.ends_at, None, "0001-01-01 means unset");
        assert_eq!(down.severity, incidentd_actors::model::Severity::Critical);
        assert_eq!(down.summary, "a:9100 down");
        assert_eq!(back.status, AlertStatus::Resolved);
        assert_eq!(back.source, "alertmanager-webhook");
    }

    #[test]
    fn wrong_version_and_bad_alerts() {
        let err = decode_alertmanager_webhook(br#"{"version": "3", "alerts": []}"#).unwrap_err();
        assert!(
            err.to_string().contains("version \"3\" is not supported"),
            "{err}"
        );
        let decoded = decode_alertmanager_webhook(
            br#"{"version": "4", "alerts": [{"status": "pending", "labels": {"a": "b"}}, {"status": "firing", "labels": {"alertname": "X"}}]}"#,
        )
        .unwrap();
        assert_eq!(decoded.accepted.len(), 1);
        assert_eq!(decoded.rejected[0].index, 0);
        assert_eq!(decoded.rejected[0].errors[0].field, "status");
    }
}
