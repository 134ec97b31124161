use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::stable_hash::StableHash;
use super::{CompactString, Labels, Timestamp};

/// Longest fingerprint accepted, in bytes (PagerDuty's dedup key limit).
pub const MAX_FINGERPRINT_LEN: usize = 255;
/// Longest summary accepted, in bytes (PagerDuty's summary limit).
pub const MAX_SUMMARY_LEN: usize = 1024;
/// Most labels one alert may carry.
pub const MAX_LABELS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// Severity, ordered from least to most urgent so `max` picks the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: expected critical, error, warning or info"
            )),
        }
    }
}

fn default_tenant() -> CompactString {
    CompactString::const_new("default")
}

fn default_severity() -> Severity {
    Severity::Warning
}

/// One normalized alert, whatever wire format it came in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Tenant the alert belongs to; the routing tree may override it.
    #[serde(default = "default_tenant")]
    pub tenant: CompactString,
    /// Identity of the alert inside its group: repeats with the same
    /// fingerprint are duplicates. Derived from the labels when empty.
    #[serde(default)]
    pub fingerprint: CompactString,
    pub status: AlertStatus,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    #[serde(default)]
    pub summary: CompactString,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Where the alert came from, e.g. `alertmanager`, `pagerduty`, `kafka:alerts`.
    #[serde(default)]
    pub source: CompactString,
    #[serde(default)]
    pub generator_url: Option<String>,
}

/// One problem with one field of an input, for error responses that name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl Alert {
    /// A firing alert with the given labels, other fields defaulted.
    pub fn firing(labels: Labels) -> Self {
        Alert {
            tenant: default_tenant(),
            fingerprint: CompactString::default(),
            status: AlertStatus::Firing,
            severity: default_severity(),
            summary: CompactString::default(),
            labels,
            annotations: Labels::new(),
            starts_at: None,
            ends_at: None,
            source: CompactString::default(),
            generator_url: None,
        }
        .normalized()
    }

    /// Fills what can be derived: fingerprint from labels, summary from
    /// annotations or the alert name.
    pub fn normalized(mut self) -> Self {
        if self.fingerprint.is_empty() {
            self.fingerprint = fingerprint_of(&self.labels);
        }
        if self.summary.is_empty() {
            self.summary = self
                .annotations
                .get("summary")
                .or_else(|| self.labels.get("alertname"))
                .cloned()
                .unwrap_or_default();
        }
        if self.tenant.is_empty() {
            self.tenant = default_tenant();
        }
        self
    }

    /// Checks the limits the engine relies on; every problem is reported.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.fingerprint.is_empty() {
            errors.push(FieldError::new("fingerprint", "must not be empty"));
        }
        if self.fingerprint.len() > MAX_FINGERPRINT_LEN {
            errors.push(FieldError::new(
                "fingerprint",
                format!(
                    "is {} bytes long; at most {MAX_FINGERPRINT_LEN} allowed",
                    self.fingerprint.len()
                ),
            ));
        }
        if self.summary.len() > MAX_SUMMARY_LEN {
            errors.push(FieldError::new(
                "summary",
                format!(
                    "is {} bytes long; at most {MAX_SUMMARY_LEN} allowed",
                    self.summary.len()
                ),
            ));
        }
        if self.labels.len() > MAX_LABELS {
            errors.push(FieldError::new(
                "labels",
                format!(
                    "has {} labels; at most {MAX_LABELS} allowed",
                    self.labels.len()
                ),
            ));
        }
        for name in self.labels.keys() {
            if !is_valid_label_name(name) {
                errors.push(FieldError::new(
                    format!("labels.{name}"),
                    "label names must match [a-zA-Z_][a-zA-Z0-9_]*",
                ));
            }
        }
        if self.tenant.is_empty() || self.tenant.len() > 128 {
            errors.push(FieldError::new("tenant", "must be 1 to 128 characters"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A stable fingerprint of a label set (FNV-1a 64 over sorted names and
/// values), the same idea as Alertmanager's, printed as 16 hex digits.
pub fn fingerprint_of(labels: &Labels) -> CompactString {
    let mut hash = StableHash::new();
    for (name, value) in labels {
        hash.write(name.as_bytes())
            .write(&[0xff])
            .write(value.as_bytes())
            .write(&[0xff]);
    }
    compact_str::format_compact!("{:016x}", hash.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::labels;

    #[test]
    fn fingerprint_depends_on_labels_only() {
        let a = fingerprint_of(&labels(&[("alertname", "Down"), ("job", "api")]));
        let b = fingerprint_of(&labels(&[("job", "api"), ("alertname", "Down")]));
        let c = fingerprint_of(&labels(&[("alertname", "Down"), ("job", "db")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn normalized_fills_fingerprint_and_summary() {
        let alert = Alert::firing(labels(&[("alertname", "HighLatency")]));
        assert!(!alert.fingerprint.is_empty());
        assert_eq!(alert.summary, "HighLatency");
        assert!(alert.validate().is_ok());
    }

    #[test]
    fn validate_names_every_bad_field() {
        let mut alert = Alert::firing(labels(&[("bad-name", "x")]));
        alert.summary = "s".repeat(MAX_SUMMARY_LEN + 1).into();
        let errors = alert.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["summary", "labels.bad-name"]);
    }

    #[test]
    fn severity_orders_by_urgency_and_parses() {
        assert!(Severity::Critical > Severity::Warning);
        assert_eq!("ERROR".parse::<Severity>().unwrap(), Severity::Error);
        assert!("fatal".parse::<Severity>().unwrap_err().contains("fatal"));
    }
}
