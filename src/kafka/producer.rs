//! Writing to the keyed topic and to the dead-letter topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::client::producer_config;
use super::record::KeyedRecord;
use super::telemetry;
use super::KafkaConfig;

/// The header of a re-keyed record holding its source record's Kafka
/// timestamp (ms, decimal).
pub const SOURCE_TIMESTAMP_HEADER: &str = "incidentd-source-timestamp";

/// Longest pause between retries while the broker is unreachable.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A record for one shard's partition of the keyed topic.
#[derive(Clone)]
pub struct Keyed {
    pub shard: usize,
    /// Group key or incident id: keeps related records together when a
    /// partition is read by tools other than incidentd.
    pub key: String,
    pub record: KeyedRecord,
    /// The Kafka timestamp (ms) of the source record it was re-keyed from,
    /// sent in a header so a shard can tell how old the alert is. Not as the
    /// record's own timestamp: time-based retention of the keyed topic, or
    /// a broker that refuses old timestamps, would then drop a re-keyed
    /// backlog or stop the re-keying.
    pub source_timestamp: Option<i64>,
}

/// Where a dead-lettered message came from, for its headers.
pub struct SourceMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

impl<'a> SourceMessage<'a> {
    pub fn of(message: &'a rdkafka::message::OwnedMessage) -> SourceMessage<'a> {
        use rdkafka::message::Message;
        SourceMessage {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
        }
    }
}

/// A keyed record ready to produce.
struct EncodedRecord {
    shard: usize,
    key: String,
    payload: Vec<u8>,
    kind: &'static str,
    /// The source timestamp header's value.
    source_time: Option<String>,
}

fn encode(records: Vec<Keyed>) -> Vec<EncodedRecord> {
    records
        .into_iter()
        .map(|k| EncodedRecord {
            shard: k.shard,
            payload: k.record.encode(),
            kind: k.record.kind(),
            key: k.key,
            source_time: k.source_timestamp.map(|ms| ms.to_string()),
        })
        .collect()
}

pub struct KeyedProducer {
    producer: FutureProducer,
    keyed_topic: String,
    dead_letter_topic: String,
    timeout: Duration,
}

impl KeyedProducer {
    pub fn new(config: &KafkaConfig) -> Result<KeyedProducer, String> {
        let producer = producer_config(config)
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        Ok(KeyedProducer {
            producer,
            keyed_topic: config.keyed_topic.clone(),
            dead_letter_topic: config.dead_letter_topic.clone(),
            timeout: config.produce_timeout,
        })
    }

    /// Produces every record and returns once the broker acknowledged all of
    /// them (acks=all), or the first failure. Records for one partition keep
    /// their order (idempotent producer).
    pub async fn send_all(&self, records: Vec<Keyed>) -> Result<(), String> {
        self.send_encoded(&encode(records)).await
    }

    async fn send_encoded(&self, encoded: &[EncodedRecord]) -> Result<(), String> {
        let sends = encoded.iter().map(|encoded| async move {
            let mut record = FutureRecord::to(&self.keyed_topic)
                .partition(encoded.shard as i32)
                .key(&encoded.key)
                .payload(&encoded.payload);
            if let Some(source_time) = &encoded.source_time {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: SOURCE_TIMESTAMP_HEADER,
                    value: Some(source_time),
                }));
            }
            let result = self.send(record).await;
            telemetry::produced(&self.keyed_topic, encoded.kind, result.is_ok());
            result
        });
        join_all(sends).await.into_iter().collect()
    }

    /// Sends a message that cannot be used to the dead-letter topic, with
    /// headers saying why and where it came from.
    pub async fn dead_letter(
        &self,
        origin: &SourceMessage<'_>,
        reason: &str,
    ) -> Result<(), String> {
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "incidentd-reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "incidentd-source-topic",
                value: Some(origin.topic),
            })
            .insert(Header {
                key: "incidentd-source-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "incidentd-source-offset",
                value: Some(&offset),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letter_topic).headers(headers);
        if let Some(key) = origin.key {
            record = record.key(key);
        }
        if let Some(payload) = origin.payload {
            record = record.payload(payload);
        }
        let result = self.send(record).await;
        telemetry::dead_lettered(origin.topic, result.is_ok());
        result
    }

    /// `send_all`, retried with backoff until acknowledged; false when
    /// `stop` was set first (the input is then read again by its next reader).
    pub async fn send_all_until_acked(&self, records: Vec<Keyed>, stop: &AtomicBool) -> bool {
        // Encoded once: a retry sends the same bytes.
        let encoded = encode(records);
        let mut delay = Duration::from_millis(50);
        loop {
            match self.send_encoded(&encoded).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "producing to the keyed topic failed; retrying")
                }
            }
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    /// `dead_letter`, retried with backoff until stored or `stop` is set.
    pub async fn dead_letter_until_stored(
        &self,
        origin: &SourceMessage<'_>,
        reason: &str,
        stop: &AtomicBool,
    ) {
        tracing::warn!(
            topic = origin.topic,
            partition = origin.partition,
            offset = origin.offset,
            reason,
            "message dead-lettered"
        );
        let mut delay = Duration::from_millis(50);
        while let Err(e) = self.dead_letter(origin, reason).await {
            tracing::warn!(error = %e, "dead-lettering failed; retrying");
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
        telemetry::consumed(origin.topic, "dead_lettered", 1);
    }

    async fn send<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<(), String>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let topic = record.topic.to_string();
        // librdkafka's own message.timeout.ms bounds delivery; this bounds
        // the wait for room in its local queue too.
        match tokio::time::timeout(
            self.timeout * 2,
            self.producer.send(record, Timeout::After(self.timeout)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(format!("kafka: producing to {topic:?}: {e}")),
            Err(_) => Err(format!(
                "kafka: no acknowledgement from the broker for {topic:?} within {:?}",
                self.timeout * 2
            )),
        }
    }
}
