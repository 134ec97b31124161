//! Incident events out to broker topics, in the CloudEvents envelope.

mod cloudevent;
mod fanout;
mod kafka;
mod outbound;
mod pulsar;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cloudevent::{event_type, CloudEvent, EventData, EVENT_TYPE_PREFIX, SOURCE};
pub use fanout::Fanout;
pub use kafka::start_kafka;
pub use outbound::Outbound;
pub use pulsar::start_pulsar;

use crate::bus::EventFilter;

/// `[events]`: where incident events go besides SSE and the notifier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Kafka topics, each with its own filter.
    pub kafka: Vec<KafkaEventsConfig>,
    /// Apache Pulsar topics, each with its own filter.
    pub pulsar: Vec<PulsarEventsConfig>,
}

/// One Pulsar topic of incident events; partition and ordering key are the
/// incident id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulsarEventsConfig {
    /// Broker service URL, e.g. "pulsar://127.0.0.1:6660".
    pub url: String,
    /// e.g. "persistent://public/default/incident-events".
    pub topic: String,
    /// Longest wait for the broker to acknowledge an event (and for a
    /// connection); a shard does not store its changes until their events
    /// are acknowledged.
    #[serde(with = "humantime_serde", default = "default_produce_timeout")]
    pub produce_timeout: Duration,
    /// Events published but not yet acknowledged that the topic may hold
    /// (while the broker is slow or down). At this many the service takes
    /// no new alerts or commands (503, sources pause) until it caught up:
    /// events are never dropped.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
    /// Events per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Bytes per batch.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// A batch goes out at the latest this long after its first event.
    #[serde(with = "humantime_serde", default = "default_batch_delay")]
    pub batch_delay: Duration,
    #[serde(default)]
    pub compression: PulsarCompression,
    /// Which events go to this topic (all when left out).
    #[serde(default)]
    pub filter: EventFilter,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PulsarCompression {
    None,
    #[default]
    Lz4,
    Zstd,
}

fn default_batch_size() -> u32 {
    1_000
}

fn default_batch_bytes() -> usize {
    128 * 1024
}

fn default_batch_delay() -> Duration {
    Duration::from_millis(2)
}

/// One Kafka topic of incident events, keyed by incident id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaEventsConfig {
    pub topic: String,
    /// Bootstrap servers; empty means the cluster's: `kafka.brokers`, with
    /// `kafka.options`.
    #[serde(default)]
    pub brokers: String,
    /// Longest wait for the broker to acknowledge an event; a shard does not
    /// store its changes until their events are acknowledged.
    #[serde(with = "humantime_serde", default = "default_produce_timeout")]
    pub produce_timeout: Duration,
    /// As for Pulsar topics: the most unacknowledged events before new
    /// input is refused.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
    /// Which events go to this topic (all when left out).
    #[serde(default)]
    pub filter: EventFilter,
}

fn default_max_backlog() -> usize {
    100_000
}

fn default_produce_timeout() -> Duration {
    Duration::from_secs(5)
}
