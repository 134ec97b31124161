//! Small builders shared by the crate's tests.

use crate::model::{Alert, AlertStatus, Labels, Severity};

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect()
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
