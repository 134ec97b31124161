//! The engine's own `Alert` JSON: one object, an array, or NDJSON.

use incidentd_actors::model::{Alert, FieldError};
use serde_json::Value;

use super::decoded::{BodyError, Decoded};
use super::fields::kind;

/// One alert object or an array of them; array items are indexed from 0.
pub fn decode_native_json(body: &[u8]) -> Result<Decoded, BodyError> {
    let items = match serde_json::from_slice::<Value>(body)? {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(BodyError::Shape(format!(
                "expected an alert object or an array of them, got {}",
                kind(&other)
            )))
        }
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        decoded.push(index, alert(item));
    }
    Ok(decoded)
}

/// One alert per line; a bad line is a rejection whose index is its line
/// number (from 1), not a failed body. Blank lines are skipped.
pub fn decode_native_ndjson(body: &[u8]) -> Result<Decoded, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::Shape(format!("NDJSON body is not UTF-8: {e}")))?;
    let mut decoded = Decoded::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str::<Value>(line).map_err(|e| {
            vec![FieldError::new(
                "",
                format!("malformed JSON at column {}: {e}", e.column()),
            )]
        });
        decoded.push(i + 1, item.and_then(alert));
    }
    Ok(decoded)
}

fn alert(item: Value) -> Result<Alert, Vec<FieldError>> {
    serde_json::from_value::<Alert>(item)
        .map(Alert::normalized)
        .map_err(|e| vec![FieldError::new(field_of(&e), e.to_string())])
}

/// serde names a missing field in backticks; use it as the field when it does.
fn field_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split('`').nth(1).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::AlertStatus;

    use super::*;

    #[test]
    fn one_object_or_an_array() {
        let one =
            decode_native_json(br#"{"status": "firing", "labels": {"alertname": "A"}}"#).unwrap();
        assert_eq!(one.accepted.len(), 1);
        assert_eq!(one.accepted[0].summary, "A");
        let many = decode_native_json(
            br#"[{"status": "firing", "labels": {"alertname": "A"}, "tenant": "acme"},
                 {"labels": {"alertname": "B"}},
                 {"status": "resolved", "severity": "critical", "fingerprint": "f1", "labels": {"x-y": "z"}}]"#,
        )
        .unwrap();
        assert_eq!(many.accepted.len(), 1);
        assert_eq!(many.accepted[0].tenant, "acme");
        assert_eq!(many.rejected[0].index, 1);
        assert_eq!(many.rejected[0].errors[0].field, "status");
        assert_eq!(many.rejected[1].index, 2);
        assert_eq!(many.rejected[1].errors[0].field, "labels.x-y");
    }

    #[test]
    fn ndjson_names_bad_lines_by_number() {
        let body = b"{\"status\": \"firing\", \"labels\": {\"alertname\": \"A\"}}\n\n{oops\n{\"status\": \"resolved\", \"labels\": {\"alertname\": \"A\"}}\n";
        let decoded = decode_native_ndjson(body).unwrap();
        assert_eq!(decoded.accepted.len(), 2);
        assert_eq!(decoded.accepted[1].status, AlertStatus::Resolved);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].index, 3);
    }
}
