//! Small builders shared by the crate's tests.

use std::collections::BTreeMap;

use crate::model::{Alert, AlertStatus, Severity};

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A firing warning alert with these labels (fingerprint and summary derived).
pub fn alert(pairs: &[(&str, &str)]) -> Alert {
    Alert::firing(labels(pairs))
}

pub fn alert_with(pairs: &[(&str, &str)], status: AlertStatus, severity: Severity) -> Alert {
    let mut alert = alert(pairs);
    alert.status = status;
    alert.severity = severity;
    alert
}
