//! Alertmanager API v2 `POST /api/v2/alerts`: what Prometheus sends to its
//! alertmanagers, so Prometheus can point at incidentd directly.

use std::time::Duration;

use incidentd_actors::model::{Alert, AlertStatus, FieldError, Timestamp};
use serde_json::Value;

use super::decoded::{BodyError, Decoded};
use super::fields::{alertmanager_alert, kind, Fields};

/// Decodes a JSON array of postable alerts. Each element is read on its own,
/// so one bad element is a rejection naming its index, not a failed batch.
/// Missing `startsAt` is `now` (or `endsAt`, if that is earlier); missing `endsAt` is `now + resolve_timeout`;
/// an alert whose `endsAt` has passed is resolved.
pub fn decode_alertmanager_v2(
    body: &[u8],
    now: Timestamp,
    resolve_timeout: Duration,
) -> Result<Decoded, BodyError> {
    let items: Vec<Value> = match serde_json::from_slice::<Value>(body)? {
        Value::Array(items) => items,
        other => {
            return Err(BodyError::Shape(format!(
                "expected a JSON array of alerts, got {}",
                kind(&other)
            )))
        }
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.iter().enumerate() {
        decoded.push(index, postable_alert(item, now, resolve_timeout));
    }
    Ok(decoded)
}

fn postable_alert(
    item: &Value,
    now: Timestamp,
    resolve_timeout: Duration,
) -> Result<Alert, Vec<FieldError>> {
    let mut fields = Fields::of(item)?;
    let labels = fields.labels();
    let annotations = fields.string_map("annotations");
    let given_start = fields.time("startsAt");
    let ends_at = fields
        .time("endsAt")
        .unwrap_or_else(|| now.plus(resolve_timeout));
    // As Alertmanager does: an alert sent already ended started no later than its end.
    let starts_at = given_start.unwrap_or(now.min(ends_at));
    if ends_at < starts_at {
        fields
            .errors
            .push(FieldError::new("endsAt", "is before startsAt"));
    }
    let generator_url = fields.string("generatorURL");
    if !fields.errors.is_empty() {
        return Err(fields.errors);
    }
    let mut alert = alertmanager_alert(labels, annotations, "alertmanager");
    alert.status = if ends_at <= now {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    alert.starts_at = Some(starts_at);
    alert.ends_at = Some(ends_at);
    alert.generator_url = generator_url;
    Ok(alert.normalized())
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::Severity;

    use super::*;

    const NOW: &str = "2026-11-27T10:00:00Z";

    fn decode(body: &str) -> Result<Decoded, BodyError> {
        decode_alertmanager_v2(
            body.as_bytes(),
            Timestamp::parse_rfc3339(NOW).unwrap(),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn prometheus_batch_with_defaults_and_a_resolved_alert() {
        let decoded = decode(
            r#"[
              {"labels": {"alertname": "HighLatency", "severity": "page", "job": "api"},
               "annotations": {"summary": "p99 above 1s"},
               "generatorURL": "http://prometheus:9090/graph?g0.expr=x"},
              {"labels": {"alertname": "DiskFull"}, "startsAt": "2026-11-27T09:00:00Z", "endsAt": "2026-11-27T09:30:00Z"}
            ]"#,
        )
        .unwrap();
        assert!(decoded.rejected.is_empty());
        let [latency, disk] = &decoded.accepted[..] else {
            panic!("two alerts")
        };
        assert_eq!(latency.status, AlertStatus::Firing);
        assert_eq!(latency.severity, Severity::Critical);
        assert_eq!(latency.summary, "p99 above 1s");
        assert_eq!(
            latency.starts_at,
            Some(Timestamp::parse_rfc3339(NOW).unwrap())
        );
        assert_eq!(
            latency.ends_at,
            Some(Timestamp::parse_rfc3339("2026-11-27T10:05:00Z").unwrap())
        );
        assert_eq!(latency.source, "alertmanager");
        assert_eq!(disk.status, AlertStatus::Resolved, "endsAt in the past");
        assert_eq!(disk.summary, "DiskFull");
        assert_ne!(latency.fingerprint, disk.fingerprint);
    }

    #[test]
    fn invalid_alerts_are_named_and_valid_ones_taken() {
        let decoded = decode(
            r#"[
              {"labels": {"alertname": "Ok"}},
              {"annotations": {"summary": "no labels"}},
              {"labels": {"alertname": 5}, "startsAt": "yesterday"},
              "not an object"
            ]"#,
        )
        .unwrap();
        assert_eq!(decoded.accepted.len(), 1);
        let named: Vec<(usize, Vec<&str>)> = decoded
            .rejected
            .iter()
            .map(|r| (r.index, r.errors.iter().map(|e| e.field.as_str()).collect()))
            .collect();
        assert_eq!(
            named,
            vec![
                (1, vec!["labels"]),
                (2, vec!["labels.alertname", "startsAt"]),
                (3, vec![""])
            ]
        );
        let backwards = decode(
            r#"[{"labels": {"a": "b"}, "startsAt": "2026-11-27T09:00:00Z", "endsAt": "2026-11-27T08:00:00Z"}]"#,
        )
        .unwrap();
        assert_eq!(backwards.rejected[0].errors[0].field, "endsAt");
    }

    #[test]
    fn body_errors_say_where() {
        let err = decode("[\n  {\"labels\": }\n]").unwrap_err();
        assert!(matches!(err, BodyError::Json { line: 2, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("malformed JSON at line 2 column"),
            "{err}"
        );
        assert!(decode("{}")
            .unwrap_err()
            .to_string()
            .contains("expected a JSON array"));
    }
}
