//! One broker topic of incident events, whatever the broker: events are
//! queued by `publish`, handed to the broker's client in publish order by a
//! delivery task, and counted as acknowledged in that order; what fails is
//! sent again with backoff. `flush` (a shard calls it before storing the
//! snapshot that records the events) waits until every event published
//! before it is acknowledged, or fails, so the shard does not store and
//! retries. Nothing is dropped: while the broker is down the backlog grows,
//! flushes fail, ingest answers 503, and no new alerts come.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use incidentd_actors::model::IncidentEvent;
use incidentd_actors::ports::{EventSink, SinkError};
use tokio::sync::{watch, Notify};

use super::cloudevent::CloudEvent;
use crate::bus::EventFilter;

const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Resolves once the broker acknowledged one record.
pub type Ack = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A broker client that takes one record at a time.
#[async_trait]
pub trait Transport: Send + 'static {
    /// Hands a record (keyed by incident id) to the client.
    async fn send(&mut self, key: &str, payload: &[u8]) -> Result<Ack, String>;
}

/// One published event until the broker acknowledged it.
struct Record {
    /// Publish order, from 1.
    number: u64,
    key: String,
    payload: Vec<u8>,
}

pub struct Outbound {
    name: String,
    filter: EventFilter,
    timeout: Duration,
    queued: Mutex<VecDeque<Record>>,
    /// Events published so far.
    published: AtomicU64,
    /// Every event up to this number is acknowledged.
    acked: watch::Sender<u64>,
    wake: Notify,
}

impl Outbound {
    /// Starts the delivery task over `transport`.
    pub fn start<T: Transport>(
        name: String,
        filter: EventFilter,
        timeout: Duration,
        transport: T,
    ) -> Arc<Outbound> {
        let (acked, _) = watch::channel(0);
        let outbound = Arc::new(Outbound {
            name,
            filter,
            timeout,
            queued: Mutex::new(VecDeque::new()),
            published: AtomicU64::new(0),
            acked,
            wake: Notify::new(),
        });
        tokio::spawn(outbound.clone().deliver(transport));
        outbound
    }

    /// Sends what is queued, then waits for the oldest acknowledgement, in
    /// publish order, for as long as the process runs.
    async fn deliver<T: Transport>(self: Arc<Self>, mut transport: T) {
        let mut in_flight: VecDeque<(Record, Ack)> = VecDeque::new();
        let mut delay = Duration::from_millis(50);
        loop {
            let queued: Vec<Record> = self.queued.lock().expect("queue lock").drain(..).collect();
            for record in queued {
                let ack = self.hand_over(&mut transport, &record).await;
                in_flight.push_back((record, ack));
            }
            let Some((record, ack)) = in_flight.pop_front() else {
                self.wake.notified().await;
                continue;
            };
            match tokio::time::timeout(self.timeout, ack).await {
                Ok(Ok(())) => {
                    self.count("acked");
                    self.acked.send_replace(record.number);
                    delay = Duration::from_millis(50);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no acknowledgement within {:?}", self.timeout),
                    };
                    self.count("retried");
                    tracing::warn!(sink = %self.name, event = record.number, %error, "event not acknowledged; sending it again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    let ack = self.hand_over(&mut transport, &record).await;
                    in_flight.push_front((record, ack));
                }
            }
        }
    }

    /// The record's acknowledgement, or an already failed one.
    async fn hand_over<T: Transport>(&self, transport: &mut T, record: &Record) -> Ack {
        match transport.send(&record.key, &record.payload).await {
            Ok(ack) => ack,
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!("incidentd_events_published_total", "sink" => self.name.clone(), "outcome" => outcome)
            .increment(1);
    }
}

#[async_trait]
impl EventSink for Outbound {
    fn publish(&self, events: &[IncidentEvent]) {
        // Encoded before taking the lock: every shard's incidents publish
        // through this one queue.
        let encoded: Vec<(String, Vec<u8>)> = events
            .iter()
            .filter(|e| self.filter.matches(e))
            .map(|e| (e.incident_id.to_string(), CloudEvent::of(e).to_json()))
            .collect();
        if encoded.is_empty() {
            return;
        }
        let mut queued = self.queued.lock().expect("queue lock");
        for (key, payload) in encoded {
            // Numbered under the lock, so queue order is number order.
            let number = self.published.fetch_add(1, Ordering::AcqRel) + 1;
            queued.push_back(Record {
                number,
                key,
                payload,
            });
        }
        drop(queued);
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
