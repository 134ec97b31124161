//! The engine's own `Alert` JSON: one object, an array, or NDJSON.

use incidentd_actors::model::{Alert, FieldError};
use serde_json::value::RawValue;
use serde_json::Value;

use super::decoded::{BodyError, Decoded};
use super::fields::kind;

/// One alert object or an array of them; array items are indexed from 0.
pub fn decode_native_json(body: &[u8]) -> Result<Decoded, BodyError> {
    // Only split into each alert's raw text here; each is read on its own.
    let items: Vec<&RawValue> = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body)?,
        Some(b'{') => vec![serde_json::from_slice(body)?],
        _ => {
            let other: Value = serde_json::from_slice(body)?;
            return Err(BodyError::Shape(format!(
                "expected an alert object or an array of them, got {}",
                kind(&other)
            )));
        }
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        decoded.push(index, alert_from_text(item.get()));
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
        decoded.push(i + 1, alert_from_text(line));
    }
    Ok(decoded)
}

/// Reads a well-formed alert straight into its type; anything else is read
/// as a value first, whose errors name the field (or the bad JSON). Going
/// through a `serde_json::Value` every time cost a third of the decode.
fn alert_from_text(text: &str) -> Result<Alert, Vec<FieldError>> {
    if let Ok(alert) = serde_json::from_str::<Alert>(text) {
        return Ok(alert.normalized());
    }
    let item = serde_json::from_str::<Value>(text).map_err(|e| {
        vec![FieldError::new(
            "",
            format!("malformed JSON at column {}: {e}", e.column()),
        )]
    })?;
    alert(item)
}

fn alert(item: Value) -> Result<Alert, Vec<FieldError>> {
    serde_path_to_error::deserialize::<_, Alert>(item)
        .map(Alert::normalized)
        .map_err(|e| vec![FieldError::new(field_of(&e), e.inner().to_string())])
}

/// Where the error is ("labels", "annotations.summary"); at the top level,
/// the field serde names in backticks when one is missing or unknown.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path != "." {
        return path;
    }
    let text = e.inner().to_string();
    let named = text.starts_with("missing field") || text.starts_with("unknown field");
    let name = named.then(|| text.split('`').nth(1)).flatten();
    name.unwrap_or("").to_string()
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
    fn a_body_of_another_shape_says_what_it_is() {
        for (body, what) in [(&b" 42 "[..], "a number"), (b"\"x\"", "a string")] {
            let error = decode_native_json(body).map(|_| ()).unwrap_err();
            assert!(
                matches!(&error, BodyError::Shape(message) if message.ends_with(what)),
                "{error}"
            );
        }
    }

    /// What only the slow path takes (a repeated key: the last one wins, as
    /// in a JSON value) is still taken, and a bad alert names its field.
    #[test]
    fn an_alert_the_fast_path_refuses_is_read_as_before() {
        let body = br#"[{"status": "firing", "status": "resolved", "labels": {"alertname": "A"}}]"#;
        let decoded = decode_native_json(body).unwrap();
        assert_eq!(decoded.accepted[0].status, AlertStatus::Resolved);
        let decoded =
            decode_native_ndjson(b"{\"labels\": 7}\n{oops\n{\"status\": \"on\"}\n").unwrap();
        assert_eq!(decoded.rejected[0].errors[0].field, "labels");
        assert_eq!(decoded.rejected[2].errors[0].field, "status");
        assert!(
            decoded.rejected[1].errors[0]
                .message
                .starts_with("malformed JSON at column 2"),
            "{:?}",
            decoded.rejected[1].errors
        );
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
