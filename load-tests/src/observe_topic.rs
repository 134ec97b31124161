//! Reads the CloudEvents the service publishes to a broker topic
//! (`[[events.kafka]]` or `[[events.pulsar]]` in its config) and matches
//! each `created` event of this run to the group whose first alert opened
//! it: latency from send to consumed, through the broker.
//!
//! Both readers start at the topic's end before anything is sent, so they
//! see exactly this run's events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::watch;

use crate::observe::incident_key;
use crate::record::Recorder;
use crate::scenario::EventsTopic;

const CREATED: &str = "incidentd.incident.created.v1";

/// Subscribes now; the returned task reads until `stop` turns true.
pub async fn start(
    topic: &EventsTopic,
    prefix: String,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let matcher = Matcher { prefix, recorder };
    Ok(match topic {
        EventsTopic::Kafka { brokers, topic } => {
            let consumer = kafka_at_end(brokers, topic)?;
            tokio::spawn(read_kafka(consumer, matcher, stop))
        }
        EventsTopic::Pulsar { url, topic } => {
            let consumer = pulsar_at_end(url, topic).await?;
            tokio::spawn(read_pulsar(consumer, matcher, stop))
        }
    })
}

struct Matcher {
    prefix: String,
    recorder: Arc<Recorder>,
}

impl Matcher {
    fn consumed(&self, payload: &[u8], at: Instant) {
        let Ok(event) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        if event["type"] != CREATED {
            return;
        }
        if let Some(key) = incident_key(&event["data"], &self.prefix) {
            self.recorder.observed(&key, at);
        }
    }
}

/// Every partition of `topic`, assigned at its current end.
fn kafka_at_end(brokers: &str, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("incidentd-load-{}", ulid::Ulid::new()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("socket.nagle.disable", "true")
        .create()
        .context("Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic} on {brokers}"))?;
    let partitions = metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .with_context(|| format!("topic {topic} does not exist on {brokers}"))?
        .partitions()
        .len();
    // Offset::End would be resolved at the first fetch, after events of
    // this run may already be there: take each partition's end now.
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .with_context(|| format!("end offset of {topic}/{partition}"))?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

async fn read_kafka(consumer: StreamConsumer, matcher: Matcher, mut stop: watch::Receiver<bool>) {
    loop {
        let message = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => matcher.consumed(message.payload().unwrap_or_default(), Instant::now()),
            Err(_) => matcher.recorder.failed("events topic read error", 0),
        }
    }
}

type PulsarConsumer = pulsar::Consumer<Vec<u8>, pulsar::TokioExecutor>;

/// A new non-durable subscription at the topic's end.
async fn pulsar_at_end(url: &str, topic: &str) -> anyhow::Result<PulsarConsumer> {
    let client = pulsar::Pulsar::builder(url, pulsar::TokioExecutor)
        .build()
        .await
        .with_context(|| format!("connecting to Pulsar at {url}"))?;
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(format!("incidentd-load-{}", ulid::Ulid::new()))
        .with_subscription_type(pulsar::SubType::Exclusive)
        .with_options(pulsar::consumer::ConsumerOptions::default().durable(false))
        .build()
        .await
        .with_context(|| format!("subscribing to {topic}"))
}

async fn read_pulsar(
    mut consumer: PulsarConsumer,
    matcher: Matcher,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            message = consumer.next() => message,
        };
        match message {
            Some(Ok(message)) => {
                matcher.consumed(&message.payload.data, Instant::now());
                let _ = consumer.ack(&message).await;
            }
            Some(Err(_)) => matcher.recorder.failed("events topic read error", 0),
            None => return,
        }
    }
}
