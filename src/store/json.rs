//! The records both stores keep besides snapshots (subscriptions, dead
//! letters, PagerDuty trigger keys) are JSON.

pub(super) fn encode(record: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(record).expect("stored records always serialize")
}

/// Reads a record back; one that cannot be read is skipped with a warning
/// rather than hiding all the others.
pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an unreadable stored {what}");
            None
        }
    }
}
