//! Pulsar source metrics, all `incidentd_pulsar_*`.

use metrics::counter;

/// Source messages by what became of them: `taken` (its alerts are durable
/// and it was acknowledged), `dead_lettered` (its copy is stored on the
/// dead-letter topic; a wholly invalid message is then acknowledged, a
/// partly valid one is also `taken` or `nacked`), `nacked` (its alerts
/// could not be stored; it is redelivered).
pub fn messages(topic: &str, outcome: &'static str, count: usize) {
    counter!("incidentd_pulsar_messages_total", "topic" => topic.to_string(), "outcome" => outcome)
        .increment(count as u64);
}

/// Batches whose alerts could not be made durable (store, engine or
/// cluster unavailable).
pub fn submit_failed(topic: &str) {
    counter!("incidentd_pulsar_submit_failures_total", "topic" => topic.to_string()).increment(1);
}

/// Connections to the broker that failed or broke; each is retried with
/// backoff.
pub fn reconnect(topic: &str) {
    counter!("incidentd_pulsar_reconnects_total", "topic" => topic.to_string()).increment(1);
}
