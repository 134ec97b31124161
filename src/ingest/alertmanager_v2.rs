//! Alertmanager API v2 `POST /api/v2/alerts`: what Prometheus sends to its
//! alertmanagers, so Prometheus can point at incidentd directly.

use std::time::Duration;

use incidentd_actors::model::{Alert, AlertStatus, FieldError, Labels, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::decoded::{BodyError, Decoded};
use super::fields::{alertmanager_alert, kind, time_from, Fields};

/// Decodes a JSON array of postable alerts. Each element is read on its own,
/// so one bad element is a rejection naming its index, not a failed batch.
/// Missing `startsAt` is `now` (or `endsAt`, if that is earlier); missing `endsAt` is `now + resolve_timeout`;
/// an alert whose `endsAt` has passed is resolved.
pub fn decode_alertmanager_v2(
    body: &[u8],
    now: Timestamp,
    resolve_timeout: Duration,
) -> Result<Decoded, BodyError> {
    // The array is only split into its elements' raw text here; anything
    // that is not an array of JSON values is read again below to say why.
    let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(body) else {
        return Err(body_error(body));
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        decoded.push(index, postable_alert(item, now, resolve_timeout));
    }
    Ok(decoded)
}

/// Why a body is not a JSON array of values: malformed JSON, or JSON of
/// another shape.
fn body_error(body: &[u8]) -> BodyError {
    match serde_json::from_slice::<Value>(body) {
        Err(e) => e.into(),
        Ok(other) => BodyError::Shape(format!(
            "expected a JSON array of alerts, got {}",
            kind(&other)
        )),
    }
}

/// A postable alert whose fields all have their expected types, read
/// straight into them: what Prometheus sends, without building a
/// `serde_json::Value` first (that was most of the cost of this format).
#[derive(Deserialize)]
struct TypedAlert {
    labels: Option<Labels>,
    annotations: Option<Labels>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Reads an element the fast way when it is well formed; anything else is
/// read field by field, which names every problem.
fn postable_alert(
    item: &RawValue,
    now: Timestamp,
    resolve_timeout: Duration,
) -> Result<Alert, Vec<FieldError>> {
    if let Some(alert) = typed_alert(item, now, resolve_timeout) {
        return Ok(alert);
    }
    let item: Value = serde_json::from_str(item.get())
        .map_err(|e| vec![FieldError::new("", format!("is not valid JSON: {e}"))])?;
    checked_alert(&item, now, resolve_timeout)
}

fn typed_alert(item: &RawValue, now: Timestamp, resolve_timeout: Duration) -> Option<Alert> {
    let typed: TypedAlert = serde_json::from_str(item.get()).ok()?;
    let labels = typed.labels.filter(|labels| !labels.is_empty())?;
    let parse = |text: Option<String>| match text {
        None => Some(None),
        Some(text) => time_from(&text).ok(),
    };
    let given_start = parse(typed.starts_at)?;
    let given_end = parse(typed.ends_at)?;
    let times = AlertTimes::of(given_start, given_end, now, resolve_timeout).ok()?;
    let annotations = typed.annotations.unwrap_or_default();
    Some(alert_from(
        labels,
        annotations,
        times,
        typed.generator_url,
        now,
    ))
}

fn checked_alert(
    item: &Value,
    now: Timestamp,
    resolve_timeout: Duration,
) -> Result<Alert, Vec<FieldError>> {
    let mut fields = Fields::of(item)?;
    let labels = fields.labels();
    let annotations = fields.string_map("annotations");
    let given_start = fields.time("startsAt");
    let given_end = fields.time("endsAt");
    let times = AlertTimes::of(given_start, given_end, now, resolve_timeout)
        .map_err(|e| fields.errors.push(e));
    let generator_url = fields.string("generatorURL");
    match times {
        Ok(times) if fields.errors.is_empty() => {
            Ok(alert_from(labels, annotations, times, generator_url, now))
        }
        _ => Err(fields.errors),
    }
}

struct AlertTimes {
    starts_at: Timestamp,
    ends_at: Timestamp,
}

impl AlertTimes {
    fn of(
        given_start: Option<Timestamp>,
        given_end: Option<Timestamp>,
        now: Timestamp,
        resolve_timeout: Duration,
    ) -> Result<AlertTimes, FieldError> {
        let ends_at = given_end.unwrap_or_else(|| now.plus(resolve_timeout));
        // As Alertmanager does: an alert sent already ended started no later than its end.
        let starts_at = given_start.unwrap_or(now.min(ends_at));
        if ends_at < starts_at {
            return Err(FieldError::new("endsAt", "is before startsAt"));
        }
        Ok(AlertTimes { starts_at, ends_at })
    }
}

fn alert_from(
    labels: Labels,
    annotations: Labels,
    times: AlertTimes,
    generator_url: Option<String>,
    now: Timestamp,
) -> Alert {
    let mut alert = alertmanager_alert(labels, annotations, "alertmanager");
    alert.status = if times.ends_at <= now {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    alert.starts_at = Some(times.starts_at);
    alert.ends_at = Some(times.ends_at);
    alert.generator_url = generator_url;
    alert.normalized()
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
    fn the_fast_reading_takes_exactly_what_the_field_by_field_reading_takes() {
        let now = Timestamp::parse_rfc3339(NOW).unwrap();
        let timeout = Duration::from_secs(300);
        for item in [
            r#"{"labels": {"alertname": "A", "severity": "page"}, "annotations": {"summary": "s"}}"#,
            r#"{"labels": {"alertname": "A"}, "annotations": null, "generatorURL": "http://p/g"}"#,
            r#"{"labels": {"alertname": "A"}, "startsAt": "0001-01-01T00:00:00Z", "endsAt": "2026-11-27T09:59:00Z"}"#,
            r#"{"labels": {"alertname": "A"}, "startsAt": "2026-11-27T09:00:00Z", "unknown": [1, 2]}"#,
        ] {
            let raw: &RawValue = serde_json::from_str(item).unwrap();
            let fast = typed_alert(raw, now, timeout).expect("read the fast way");
            let checked = checked_alert(&serde_json::from_str(item).unwrap(), now, timeout);
            assert_eq!(Ok(fast), checked, "{item}");
        }
        for item in [
            r#"{"labels": {}}"#,
            r#"{"labels": {"a": 1}}"#,
            r#"{"labels": {"a": "b"}, "endsAt": "soon"}"#,
            r#"{"labels": {"a": "b"}, "startsAt": "2026-11-27T09:00:00Z", "endsAt": "2026-11-27T08:00:00Z"}"#,
        ] {
            let raw: &RawValue = serde_json::from_str(item).unwrap();
            assert_eq!(
                typed_alert(raw, now, timeout),
                None,
                "{item} is left to the checks"
            );
        }
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
