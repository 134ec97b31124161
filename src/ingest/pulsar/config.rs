use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::pulsar_url_error;
use crate::ingest::SourceFormat;

/// `[pulsar]`: alerts consumed from Apache Pulsar topics. With `url` empty
/// (the default) there is no Pulsar source. Each message is acknowledged
/// only once its alerts are durable, so a crash or restart redelivers what
/// was not yet taken and nothing that was. (Incident events *to* Pulsar
/// are configured in `[[events.pulsar]]`.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PulsarSourceConfig {
    /// Broker service URL, e.g. "pulsar://127.0.0.1:6660" or
    /// "pulsar+ssl://host:6651". Empty: no Pulsar source.
    pub url: String,
    /// Subscription of the replicas on every source topic. Replicas with the
    /// same name share the work; the broker keeps its position across
    /// restarts.
    pub subscription: String,
    /// How the replicas share a topic; see `PulsarSubscriptionType`.
    pub subscription_type: PulsarSubscriptionType,
    /// Messages that cannot be decoded or are invalid land here with the
    /// properties incidentd-reason, incidentd-source-topic and
    /// incidentd-source-message-id. With `key_shared`, so do messages that
    /// failed `max_redeliveries` times (properties REAL_TOPIC and
    /// ORIGIN_MESSAGE_ID, no reason).
    pub dead_letter_topic: String,
    /// `key_shared` only: a message whose alerts could not be stored this
    /// many times (store or cluster unavailable each time) goes to the
    /// dead-letter topic instead of being delivered again. The broker does
    /// not count redeliveries on `failover` subscriptions; there a failing
    /// message is retried until it succeeds.
    pub max_redeliveries: usize,
    /// After a batch could not be stored, it is held this long before it is
    /// negatively acknowledged and redelivered; so
    /// `max_redeliveries × redelivery_delay` is about the longest outage
    /// ridden out before alerts are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub redelivery_delay: Duration,
    /// Longest wait for any call to the broker: connecting, subscribing,
    /// producing a dead letter, closing.
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// Most messages handed to the engine at once. Also each topic
    /// consumer's receiver queue and flow permits, which bound what is
    /// buffered: at most about 2 × max_batch messages per topic.
    pub max_batch: u32,
    /// Alert topics to consume, one consumer each.
    pub sources: Vec<PulsarSource>,
}

impl Default for PulsarSourceConfig {
    fn default() -> Self {
        PulsarSourceConfig {
            url: String::new(),
            subscription: "incidentd".into(),
            subscription_type: PulsarSubscriptionType::KeyShared,
            dead_letter_topic: "persistent://public/default/incidentd-alerts-dead-letter".into(),
            max_redeliveries: 10,
            redelivery_delay: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(5),
            max_batch: 1_000,
            sources: Vec::new(),
        }
    }
}

impl PulsarSourceConfig {
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// What serde cannot check.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.enabled() {
            if !self.sources.is_empty() {
                errors.push("pulsar.sources are listed but pulsar.url is empty".into());
            }
            return errors;
        }
        errors.extend(pulsar_url_error("pulsar.url", &self.url));
        if self.sources.is_empty() {
            errors.push(
                "pulsar.url is set but pulsar.sources is empty (add [[pulsar.sources]])".into(),
            );
        }
        if self.subscription.is_empty() || self.dead_letter_topic.is_empty() {
            errors.push("pulsar: subscription and dead_letter_topic must not be empty".into());
        }
        if self.redelivery_delay.is_zero() || self.operation_timeout.is_zero() {
            errors.push("pulsar: redelivery_delay and operation_timeout must be above zero".into());
        }
        if self.max_batch == 0 || self.max_redeliveries == 0 {
            errors.push("pulsar: max_batch and max_redeliveries must be above zero".into());
        }
        let mut seen = std::collections::HashSet::new();
        for source in &self.sources {
            if source.topic.is_empty() || source.topic == self.dead_letter_topic {
                errors.push(format!(
                    "pulsar.sources: topic {:?} is empty or the dead-letter topic",
                    source.topic
                ));
            }
            if !seen.insert(source.topic.as_str()) {
                errors.push(format!(
                    "pulsar.sources: topic {:?} is listed twice",
                    source.topic
                ));
            }
        }
        errors
    }
}

/// How replicas share a source topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PulsarSubscriptionType {
    /// Every replica takes part; messages of one key (the producer's
    /// ordering or partition key, e.g. the alert's group) always go to one
    /// replica. Pick it to spread a busy topic over replicas when producers
    /// key their messages; unkeyed messages all go to one replica. Retries
    /// are bounded by `max_redeliveries`, but a redelivered message may be
    /// applied after later messages of its key.
    KeyShared,
    /// One active replica per topic (partition), the others on standby.
    /// Pick it when producers do not set keys, or when strict order matters
    /// more than spreading load: after a failure the consumer starts over
    /// from the failed message, so order holds across retries. The broker
    /// counts no redeliveries here: `max_redeliveries` does not apply and a
    /// batch is retried until it can be stored.
    Failover,
}

/// One alert topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulsarSource {
    /// e.g. "persistent://public/default/alerts". A partitioned topic is
    /// consumed on all its partitions.
    pub topic: String,
    /// How its messages are written.
    pub format: SourceFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PulsarSourceConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let config = parse(
            r#"
            url = "pulsar://127.0.0.1:6660"
            sources = [{ topic = "persistent://public/default/alerts", format = "alertmanager_webhook" }]
            "#,
        )
        .unwrap();
        assert!(config.enabled());
        assert_eq!(config.subscription, "incidentd");
        assert_eq!(config.subscription_type, PulsarSubscriptionType::KeyShared);
        assert_eq!(config.sources[0].format, SourceFormat::AlertmanagerWebhook);
        assert_eq!(config.errors(), Vec::<String>::new());
        assert!(!PulsarSourceConfig::default().enabled());
        assert!(PulsarSourceConfig::default().errors().is_empty());
    }

    #[test]
    fn typos_and_unknown_values_are_rejected() {
        let err = parse("subscripton = \"x\"").unwrap_err().to_string();
        assert!(err.contains("subscripton"), "{err}");
        let err = parse("subscription_type = \"shared\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key_shared"), "{err}");
        let err = parse("sources = [{ topic = \"a\", format = \"native\", keyed = true }]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("keyed"), "{err}");
    }

    #[test]
    fn inconsistent_settings_are_named() {
        let config = parse(
            r#"
            url = "http://broker"
            dead_letter_topic = "dlq"
            max_batch = 0
            operation_timeout = "0s"
            sources = [
                { topic = "a", format = "native" },
                { topic = "a", format = "pagerduty" },
                { topic = "dlq", format = "native" },
            ]
            "#,
        )
        .unwrap();
        let errors = config.errors().join("\n");
        for expected in [
            "must start with pulsar://",
            "max_batch and max_redeliveries must be above zero",
            "operation_timeout must be above zero",
            "\"a\" is listed twice",
            "\"dlq\" is empty or the dead-letter topic",
        ] {
            assert!(
                errors.contains(expected),
                "{expected:?} missing in: {errors}"
            );
        }
        let orphan = parse("sources = [{ topic = \"a\", format = \"native\" }]").unwrap();
        assert_eq!(
            orphan.errors(),
            vec!["pulsar.sources are listed but pulsar.url is empty".to_string()]
        );
        let no_sources = parse("url = \"pulsar://x:6650\"").unwrap();
        assert!(no_sources.errors()[0].contains("pulsar.sources is empty"));
    }
}
