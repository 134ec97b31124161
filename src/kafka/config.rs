use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ingest::SourceFormat;

/// `[kafka]`: cluster mode. With `brokers` empty (the default) incidentd
/// runs standalone and none of this is used. With brokers set, replicas
/// share the shards through one Kafka consumer group: partition N of the
/// keyed topic is shard N, so that topic must have `engine.shards`
/// partitions; snapshots must then live in Redis (`store.kind = "redis"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated ("host:port,host:port").
    pub brokers: String,
    /// Consumer group of the replicas; the re-keying consumers use
    /// "<group_id>.sources".
    pub group_id: String,
    /// The shards' input: alerts, commands and manual incidents, each on the
    /// partition of its shard. Created by the operator with `engine.shards`
    /// partitions.
    pub keyed_topic: String,
    /// Messages that cannot be decoded or are invalid land here, with
    /// headers naming the reason, source topic, partition and offset.
    pub dead_letter_topic: String,
    /// Alert topics to consume.
    pub sources: Vec<KafkaSource>,
    /// A replica that sends no heartbeat for this long leaves the group and
    /// its partitions move to the others.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Longest a revoked shard may take to store its state and stop before
    /// the hand-over goes on without it (logged). Keep Kubernetes'
    /// terminationGracePeriodSeconds above shutdown_timeout + this.
    #[serde(with = "humantime_serde")]
    pub handover_timeout: Duration,
    /// Longest wait for the broker to acknowledge a produced record
    /// (acks=all); beyond it ingest answers 503.
    #[serde(with = "humantime_serde")]
    pub produce_timeout: Duration,
    /// Most messages a partition hands its shard at once.
    pub max_batch: usize,
    /// Messages buffered per partition; past it the partition is paused
    /// until its shard catches up.
    pub partition_buffer: usize,
    /// Extra librdkafka properties for every client (e.g. security.protocol,
    /// sasl.mechanism); they override incidentd's own settings.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "incidentd".into(),
            keyed_topic: "incidentd.alerts.keyed".into(),
            dead_letter_topic: "incidentd.alerts.dead-letter".into(),
            sources: Vec::new(),
            session_timeout: Duration::from_secs(10),
            handover_timeout: Duration::from_secs(20),
            produce_timeout: Duration::from_secs(5),
            max_batch: 1_000,
            partition_buffer: 10_000,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// What serde cannot check.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.group_id.is_empty()
            || self.keyed_topic.is_empty()
            || self.dead_letter_topic.is_empty()
        {
            errors.push(
                "kafka: group_id, keyed_topic and dead_letter_topic must not be empty".into(),
            );
        }
        if self.session_timeout.is_zero()
            || self.handover_timeout.is_zero()
            || self.produce_timeout.is_zero()
        {
            errors.push(
                "kafka: session_timeout, handover_timeout and produce_timeout must be above zero"
                    .into(),
            );
        }
        if self.max_batch == 0 || self.partition_buffer < self.max_batch {
            errors.push(format!(
                "kafka: max_batch ({}) must be above zero and at most partition_buffer ({})",
                self.max_batch, self.partition_buffer
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for source in &self.sources {
            if source.topic == self.keyed_topic || source.topic == self.dead_letter_topic {
                errors.push(format!(
                    "kafka.sources: topic {:?} is incidentd's own keyed or dead-letter topic",
                    source.topic
                ));
            }
            if !seen.insert(source.topic.as_str()) {
                errors.push(format!(
                    "kafka.sources: topic {:?} is listed twice",
                    source.topic
                ));
            }
        }
        errors
    }
}

/// One alert topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    pub topic: String,
    /// How its messages are written.
    pub format: SourceFormat,
    /// The producer already puts each alert on the partition of its shard
    /// (incidentd's own keyed format rules; the topic has `engine.shards`
    /// partitions): the shard consumers read it directly, skipping the
    /// re-keying hop. An alert found on another shard's partition is still
    /// re-keyed, never dropped.
    #[serde(default)]
    pub keyed_by_group_key: bool,
}
