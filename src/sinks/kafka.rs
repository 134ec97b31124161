//! Incident events to a Kafka topic, keyed by incident id so one incident's
//! events stay on one partition, in order (idempotent producer).
//!
//! Delivery is at least once with no gap: `publish` hands each event to the
//! producer and notes it; a delivery task awaits acknowledgements in publish
//! order (re-sending what failed, with backoff); `flush` (which a shard calls
//! before storing the snapshot that records the events) waits until every
//! event published before it is acknowledged, or fails, so the shard does
//! not store and retries. Nothing is dropped: while the broker is down the
//! backlog grows, flushes fail, ingest answers 503, and no new alerts come.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use incidentd_actors::model::IncidentEvent;
use incidentd_actors::ports::{EventSink, SinkError};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{watch, Notify};

use super::cloudevent::CloudEvent;
use super::KafkaEventsConfig;
use crate::bus::EventFilter;
use crate::kafka::producer_settings;

const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// One published event until the broker acknowledged it.
struct Outgoing {
    /// Publish order, from 1.
    number: u64,
    key: String,
    payload: Vec<u8>,
    /// None when the producer's local queue refused it; sent again.
    delivery: Option<DeliveryFuture>,
}

pub struct KafkaEventSink {
    name: String,
    topic: String,
    filter: EventFilter,
    producer: FutureProducer,
    timeout: Duration,
    outgoing: Mutex<VecDeque<Outgoing>>,
    /// Events published so far.
    published: AtomicU64,
    /// Every event up to this number is acknowledged.
    acked: watch::Sender<u64>,
    wake: Notify,
}

impl KafkaEventSink {
    /// Connects the producer and starts the delivery task.
    pub fn start(config: &KafkaEventsConfig, brokers: &str) -> Result<Arc<KafkaEventSink>, String> {
        let producer: FutureProducer = producer_settings(brokers, config.produce_timeout)
            .create()
            .map_err(|e| format!("kafka event producer for {:?}: {e}", config.topic))?;
        let (acked, _) = watch::channel(0);
        let sink = Arc::new(KafkaEventSink {
            name: format!("kafka:{}", config.topic),
            topic: config.topic.clone(),
            filter: config.filter.clone(),
            producer,
            timeout: config.produce_timeout,
            outgoing: Mutex::new(VecDeque::new()),
            published: AtomicU64::new(0),
            acked,
            wake: Notify::new(),
        });
        tokio::spawn(sink.clone().deliver());
        Ok(sink)
    }

    fn send(&self, key: &str, payload: &[u8]) -> Option<DeliveryFuture> {
        let record = FutureRecord::to(&self.topic).key(key).payload(payload);
        match self.producer.send_result(record) {
            Ok(delivery) => Some(delivery),
            Err((e, _)) => {
                tracing::warn!(topic = %self.topic, error = %e, "event not queued for the broker; it is sent again");
                None
            }
        }
    }

    /// Awaits acknowledgements in publish order, forever (the task ends with
    /// the process).
    async fn deliver(self: Arc<Self>) {
        let mut delay = Duration::from_millis(50);
        loop {
            let head = self.outgoing.lock().expect("outgoing lock").pop_front();
            let Some(mut head) = head else {
                self.wake.notified().await;
                continue;
            };
            let delivered = match head.delivery.take() {
                Some(delivery) => matches!(
                    tokio::time::timeout(self.timeout, delivery).await,
                    Ok(Ok(Ok(_)))
                ),
                None => false,
            };
            if delivered {
                metrics::counter!("incidentd_events_published_total", "sink" => self.name.clone(), "outcome" => "acked").increment(1);
                self.acked.send_replace(head.number);
                delay = Duration::from_millis(50);
                continue;
            }
            metrics::counter!("incidentd_events_published_total", "sink" => self.name.clone(), "outcome" => "retried").increment(1);
            tracing::warn!(topic = %self.topic, event = head.number, "event not acknowledged; sending it again");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            head.delivery = self.send(&head.key, &head.payload);
            self.outgoing
                .lock()
                .expect("outgoing lock")
                .push_front(head);
        }
    }
}

#[async_trait]
impl EventSink for KafkaEventSink {
    fn publish(&self, events: &[IncidentEvent]) {
        let mut outgoing = self.outgoing.lock().expect("outgoing lock");
        for event in events.iter().filter(|e| self.filter.matches(e)) {
            let key = event.incident_id.to_string();
            let payload = CloudEvent::of(event).to_json();
            let delivery = self.send(&key, &payload);
            let number = self.published.fetch_add(1, Ordering::AcqRel) + 1;
            outgoing.push_back(Outgoing {
                number,
                key,
                payload,
                delivery,
            });
        }
        drop(outgoing);
        self.wake.notify_one();
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let target = self.published.load(Ordering::Acquire);
        let mut acked = self.acked.subscribe();
        let reached = tokio::time::timeout(self.timeout, acked.wait_for(|n| *n >= target)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(SinkError {
                sink: self.name.clone(),
                message: format!(
                    "{} events not acknowledged by the broker within {:?}",
                    target.saturating_sub(*self.acked.borrow()),
                    self.timeout
                ),
            }),
        }
    }
}
