//! Kafka metrics, all `incidentd_kafka_*`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram};
use rdkafka::Statistics;

/// Consumed messages by what became of them: `received` (every one),
/// `rekeyed` (sent on to the keyed topic), `replayed` (already applied),
/// `dead_lettered`, and `held` (each attempt to decode a message that had
/// to wait for the store).
pub fn consumed(topic: &str, outcome: &'static str, count: usize) {
    counter!("incidentd_kafka_messages_total", "topic" => topic.to_string(), "outcome" => outcome)
        .increment(count as u64);
}

/// Alerts from the keyed topic whose effect a shard stored.
pub fn alerts_applied(count: usize) {
    counter!("incidentd_kafka_alerts_applied_total").increment(count as u64);
}

/// How old consumed messages are when they reach `stage`, from their Kafka
/// timestamps (ms): `rekeyed` (every record of its re-keying batch
/// acknowledged by the keyed topic, which may come after a shard stored
/// some of them) or `stored` (its alerts' effect stored by a shard). A
/// re-keyed record carries its source's timestamp in a header, so `stored`
/// spans the whole way from the alert's producer. A message without a
/// timestamp is not counted; a clock behind the producer's counts as 0.
pub fn record_ages(stage: &'static str, timestamps_ms: impl IntoIterator<Item = Option<i64>>) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_millis() as i64);
    let histogram = histogram!("incidentd_kafka_record_age_seconds", "stage" => stage);
    for timestamp_ms in timestamps_ms.into_iter().flatten() {
        let age = Duration::from_millis(now_ms.saturating_sub(timestamp_ms).max(0) as u64);
        histogram.record(age.as_secs_f64());
    }
}

pub fn produced(topic: &str, kind: &'static str, ok: bool) {
    let outcome = if ok { "acked" } else { "failed" };
    counter!("incidentd_kafka_produced_total", "topic" => topic.to_string(), "kind" => kind, "outcome" => outcome)
        .increment(1);
}

pub fn dead_lettered(source_topic: &str, ok: bool) {
    let outcome = if ok { "stored" } else { "failed" };
    counter!("incidentd_kafka_dead_lettered_total", "topic" => source_topic.to_string(), "outcome" => outcome)
        .increment(1);
}

/// `assign`, `revoke` or `error`.
pub fn rebalance(kind: &'static str, partitions: usize) {
    counter!("incidentd_kafka_rebalances_total", "kind" => kind).increment(1);
    gauge!("incidentd_kafka_rebalance_partitions", "kind" => kind).set(partitions as f64);
}

/// How long taking over (`assign`) or giving away (`revoke`) shards took.
pub fn handover(kind: &'static str, duration: Duration) {
    histogram!("incidentd_kafka_handover_duration_seconds", "kind" => kind)
        .record(duration.as_secs_f64());
}

pub fn partition_paused(topic: &str) {
    counter!("incidentd_kafka_partition_pauses_total", "topic" => topic.to_string()).increment(1);
}

pub fn owned_shards(count: usize) {
    gauge!("incidentd_kafka_owned_shards").set(count as f64);
}

/// Consumer lag per assigned partition, from librdkafka's statistics.
pub fn lag(statistics: &Statistics) {
    for (name, topic) in &statistics.topics {
        for (partition, stats) in &topic.partitions {
            // -1 is librdkafka's "internal" partition; lag -1 means unknown.
            if *partition < 0 || stats.consumer_lag < 0 {
                continue;
            }
            gauge!("incidentd_kafka_consumer_lag", "topic" => name.clone(), "partition" => partition.to_string())
                .set(stats.consumer_lag as f64);
        }
    }
}
