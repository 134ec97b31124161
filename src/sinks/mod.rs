//! Incident events out to broker topics, in the CloudEvents envelope.

mod cloudevent;
mod fanout;
mod kafka;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cloudevent::{CloudEvent, EventData, SOURCE};
pub use fanout::Fanout;
pub use kafka::KafkaEventSink;

use crate::bus::EventFilter;

/// `[events]`: where incident events go besides SSE and the notifier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Kafka topics, each with its own filter.
    pub kafka: Vec<KafkaEventsConfig>,
}

/// One Kafka topic of incident events, keyed by incident id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaEventsConfig {
    pub topic: String,
    /// Bootstrap servers; empty means `kafka.brokers`.
    #[serde(default)]
    pub brokers: String,
    /// Longest wait for the broker to acknowledge an event; a shard does not
    /// store its changes until their events are acknowledged.
    #[serde(with = "humantime_serde", default = "default_produce_timeout")]
    pub produce_timeout: Duration,
    /// Which events go to this topic (all when left out).
    #[serde(default)]
    pub filter: EventFilter,
}

fn default_produce_timeout() -> Duration {
    Duration::from_secs(5)
}
