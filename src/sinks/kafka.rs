//! Incident events to a Kafka topic, keyed by incident id so one incident's
//! events stay on one partition, in order (idempotent producer).

use std::sync::Arc;

use async_trait::async_trait;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::outbound::{Ack, Outbound, Transport};
use super::KafkaEventsConfig;
use crate::kafka::{producer_settings, with_options, KafkaConfig};

struct KafkaTransport {
    producer: FutureProducer,
    topic: String,
}

#[async_trait]
impl Transport for KafkaTransport {
    async fn send(&mut self, key: &str, payload: &[u8]) -> Result<Ack, String> {
        let record = FutureRecord::to(&self.topic).key(key).payload(payload);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| format!("not queued for the broker: {e}"))?;
        Ok(Box::pin(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("the producer dropped the record".into()),
            }
        }))
    }
}

/// Connects the producer and starts delivering to `config.topic`.
/// With no brokers of its own, the topic is on the cluster's Kafka and its
/// producer takes the cluster's settings (`kafka.brokers`, `kafka.options`).
pub fn start_kafka(
    config: &KafkaEventsConfig,
    cluster: &KafkaConfig,
) -> Result<Arc<Outbound>, String> {
    let settings = if config.brokers.is_empty() {
        with_options(
            producer_settings(&cluster.brokers, config.produce_timeout),
            cluster,
        )
    } else {
        producer_settings(&config.brokers, config.produce_timeout)
    };
    let producer: FutureProducer = settings
        .create()
        .map_err(|e| format!("kafka event producer for {:?}: {e}", config.topic))?;
    let transport = KafkaTransport {
        producer,
        topic: config.topic.clone(),
    };
    Ok(Outbound::start(
        format!("kafka:{}", config.topic),
        config.filter.clone(),
        config.produce_timeout,
        config.max_backlog,
        transport,
    ))
}
