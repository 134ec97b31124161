//! Reading fields out of loosely typed JSON items, collecting every problem
//! with the field's name instead of stopping at the first.

use incidentd_actors::model::{
    Alert, CompactString, FieldError, Labels, Severity, Timestamp, MAX_SUMMARY_LEN,
};
use serde_json::{Map, Value};

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Fields of one batch item, which must be a JSON object.
    pub fn of(item: &'a Value) -> Result<Self, Vec<FieldError>> {
        match item.as_object() {
            Some(object) => Ok(Fields {
                object,
                errors: Vec::new(),
            }),
            None => Err(vec![FieldError::new(
                "",
                format!("must be an object, got {}", kind(item)),
            )]),
        }
    }

    /// The alert's `labels`: required, a non-empty object of strings.
    pub fn labels(&mut self) -> Labels {
        let labels = self.string_map("labels");
        if labels.is_empty() && self.errors.is_empty() {
            self.error("labels", "is required and must not be empty");
        }
        labels
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn string(&mut self, field: &str) -> Option<String> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(field, format!("must be a string, got {}", kind(other)));
                None
            }
        }
    }

    /// A map of string to string (labels, annotations).
    pub fn string_map(&mut self, field: &str) -> Labels {
        match self.object.get(field) {
            None | Some(Value::Null) => Labels::new(),
            Some(Value::Object(map)) => {
                // Gathered and sorted once, whatever order the JSON map
                // keeps: an annotations object may hold thousands of names.
                let mut pairs = Vec::with_capacity(map.len());
                for (key, value) in map {
                    match value {
                        Value::String(s) => pairs.push((key.into(), s.into())),
                        other => self.error(
                            &format!("{field}.{key}"),
                            format!("must be a string, got {}", kind(other)),
                        ),
                    }
                }
                pairs.into_iter().collect()
            }
            Some(other) => {
                self.error(
                    field,
                    format!("must be an object of strings, got {}", kind(other)),
                );
                Labels::new()
            }
        }
    }

    /// An RFC 3339 time; times before the Unix epoch (Alertmanager's
    /// `0001-01-01T00:00:00Z` for "unset") read as absent.
    pub fn time(&mut self, field: &str) -> Option<Timestamp> {
        let text = self.string(field)?;
        time_from(&text).unwrap_or_else(|e| {
            self.error(field, format!("{text:?} is not an RFC 3339 time: {e}"));
            None
        })
    }
}

/// An RFC 3339 time; before the Unix epoch reads as absent (see `Fields::time`).
pub fn time_from(text: &str) -> Result<Option<Timestamp>, chrono::ParseError> {
    Timestamp::parse_rfc3339(text).map(|t| (t.millis() > 0).then_some(t))
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Severity from a label, with the spellings Prometheus rules use, in any
/// case; unknown ones read as warning. Compared in place: every alert goes
/// through here, and a lowercased copy was an allocation each.
pub fn severity_from_label(label: Option<&CompactString>) -> Severity {
    let Some(label) = label else {
        return Severity::Warning;
    };
    let is_one_of = |names: &[&str]| names.iter().any(|name| label.eq_ignore_ascii_case(name));
    if is_one_of(&["critical", "page", "p1"]) {
        Severity::Critical
    } else if is_one_of(&["error", "high", "p2"]) {
        Severity::Error
    } else if is_one_of(&["info", "none", "informational", "low"]) {
        Severity::Info
    } else {
        Severity::Warning
    }
}

/// An alert as Alertmanager describes one: severity from the `severity`
/// label, summary from the annotations.
pub fn alertmanager_alert(labels: Labels, annotations: Labels, source: &str) -> Alert {
    let mut alert = Alert::firing(labels);
    alert.severity = severity_from_label(alert.labels.get("severity"));
    alert.summary = summary_from(&annotations);
    alert.annotations = annotations;
    alert.source = source.into();
    alert
}

/// The alert's summary from its `summary` (else `description`) annotation,
/// cut at the engine's limit: a long description must not get a valid alert
/// rejected. The annotation itself keeps the full text.
pub fn summary_from(annotations: &Labels) -> CompactString {
    let text = annotations
        .get("summary")
        .or_else(|| annotations.get("description"))
        .map_or("", CompactString::as_str);
    let mut end = text.len().min(MAX_SUMMARY_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_spellings_in_any_case() {
        for (label, severity) in [
            (Some("Critical"), Severity::Critical),
            (Some("PAGE"), Severity::Critical),
            (Some("p1"), Severity::Critical),
            (Some("High"), Severity::Error),
            (Some("p2"), Severity::Error),
            (Some("Informational"), Severity::Info),
            (Some("none"), Severity::Info),
            (Some("warning"), Severity::Warning),
            (Some("p10"), Severity::Warning),
            (None, Severity::Warning),
        ] {
            let label = label.map(CompactString::from);
            assert_eq!(severity_from_label(label.as_ref()), severity, "{label:?}");
        }
    }

    #[test]
    fn summary_prefers_summary_and_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_SUMMARY_LEN);
        let annotations = Labels::from([("description".into(), long.into())]);
        let summary = summary_from(&annotations);
        assert_eq!(summary.len(), MAX_SUMMARY_LEN);
        assert!(summary.chars().all(|c| c == 'é'));
        let both = Labels::from([
            ("summary".into(), "s".into()),
            ("description".into(), "d".into()),
        ]);
        assert_eq!(summary_from(&both), "s");
    }
}
