//! One broker topic of incident events, whatever the broker: events are
//! queued by `publish`, handed to the broker's client in publish order by a
//! delivery task, and counted as acknowledged in that order; what fails is
//! sent again with backoff. `flush` (a shard calls it before storing the
//! snapshot that records the events) waits until every event published
//! before it is acknowledged, or fails, so the shard does not store and
//! retries. Nothing is dropped: while the broker is down the backlog grows,
//! flushes fail, ingest answers 503, and no new alerts come; at
//! `max_backlog` unacknowledged events the engine refuses every new alert
//! and command until the broker caught up (escalation timers still fire:
//! the bound is overshot by at most what they add meanwhile).

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

use crate::bus::{EventFilter, SharedEvent};
use crate::telemetry;

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
    payload: Arc<[u8]>,
}

/// A record handed to the client, until acknowledged or given up on.
struct InFlight {
    record: Record,
    ack: Ack,
    handed_at: tokio::time::Instant,
    deadline: tokio::time::Instant,
}

pub struct Outbound {
    name: String,
    filter: EventFilter,
    timeout: Duration,
    max_backlog: usize,
    queued: Mutex<VecDeque<Record>>,
    /// Events published so far.
    published: AtomicU64,
    /// Every event up to this number is acknowledged.
    acked: watch::Sender<u64>,
    wake: Notify,
    metrics: SinkMetrics,
}

/// Registered once: the delivery task counts every event.
struct SinkMetrics {
    acked: metrics::Counter,
    retried: metrics::Counter,
    ack_duration: metrics::Histogram,
}

impl SinkMetrics {
    fn of(sink: &str) -> SinkMetrics {
        let published = |outcome: &'static str| metrics::counter!(telemetry::EVENTS_PUBLISHED, "sink" => sink.to_string(), "outcome" => outcome);
        SinkMetrics {
            acked: published("acked"),
            retried: published("retried"),
            ack_duration: metrics::histogram!(telemetry::EVENTS_ACK_DURATION, "sink" => sink.to_string()),
        }
    }
}

impl Outbound {
    /// Starts the delivery task over `transport`.
    pub fn start<T: Transport>(
        name: String,
        filter: EventFilter,
        timeout: Duration,
        max_backlog: usize,
        transport: T,
    ) -> Arc<Outbound> {
        let (acked, _) = watch::channel(0);
        let outbound = Arc::new(Outbound {
            metrics: SinkMetrics::of(&name),
            name,
            filter,
            timeout,
            max_backlog,
            queued: Mutex::new(VecDeque::new()),
            published: AtomicU64::new(0),
            acked,
            wake: Notify::new(),
        });
        tokio::spawn(outbound.clone().deliver(transport));
        outbound
    }

    /// Hands whatever is queued to the client while it waits for the oldest
    /// acknowledgement, so batches pipeline instead of each waiting for the
    /// one before; counts acknowledgements in publish order, for as long as
    /// the process runs.
    async fn deliver<T: Transport>(self: Arc<Self>, mut transport: T) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut delay = Duration::from_millis(50);
        loop {
            let queued: Vec<Record> = self.queued.lock().expect("queue lock").drain(..).collect();
            for record in queued {
                in_flight.push_back(self.hand_over(&mut transport, record).await);
            }
            let Some(oldest) = in_flight.front_mut() else {
                self.wake.notified().await;
                continue;
            };
            let outcome = tokio::select! {
                outcome = tokio::time::timeout_at(oldest.deadline, &mut oldest.ack) => outcome,
                // More events: hand them over too, then keep waiting.
                _ = self.wake.notified() => continue,
            };
            let InFlight {
                record, handed_at, ..
            } = in_flight.pop_front().expect("the oldest is there");
            match outcome {
                Ok(Ok(())) => {
                    self.metrics.acked.increment(1);
                    self.metrics
                        .ack_duration
                        .record(handed_at.elapsed().as_secs_f64());
                    self.acked.send_replace(record.number);
                    delay = Duration::from_millis(50);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no acknowledgement within {:?}", self.timeout),
                    };
                    self.metrics.retried.increment(1);
                    tracing::warn!(sink = %self.name, event = record.number, %error, "event not acknowledged; sending it again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    in_flight.push_front(self.hand_over(&mut transport, record).await);
                }
            }
        }
    }

    /// The record with its acknowledgement (or an already failed one).
    async fn hand_over<T: Transport>(&self, transport: &mut T, record: Record) -> InFlight {
        let ack = match transport.send(&record.key, &record.payload).await {
            Ok(ack) => ack,
            Err(e) => Box::pin(std::future::ready(Err(e))),
        };
        let handed_at = tokio::time::Instant::now();
        InFlight {
            record,
            ack,
            handed_at,
            deadline: handed_at + self.timeout,
        }
    }

    /// Queues the events the filter takes, in order; never waits.
    pub fn publish_shared(&self, events: &[Arc<SharedEvent>]) {
        // Encoded before taking the lock: every shard's incidents publish
        // through this one queue.
        let encoded: Vec<(String, Arc<[u8]>)> = events
            .iter()
            .filter(|e| self.filter.matches(e))
            .map(|e| (e.incident_id.to_string(), e.cloudevent().clone()))
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
}

#[async_trait]
impl EventSink for Outbound {
    fn publish(&self, events: &[IncidentEvent]) {
        self.publish_shared(&SharedEvent::share_all(events));
    }

    fn backlog_full(&self) -> Option<String> {
        let published = self.published.load(Ordering::Acquire);
        let unacked = published.saturating_sub(*self.acked.borrow());
        (unacked >= self.max_backlog as u64).then(|| {
            format!(
                "event sink {}: {unacked} events not yet acknowledged by the broker (max_backlog {})",
                self.name, self.max_backlog
            )
        })
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

#[cfg(test)]
mod tests {
    use incidentd_actors::model::{Change, IncidentId};
    use tokio::sync::oneshot;

    use super::*;
    use crate::test_support::{event, summary};

    /// A record's key, and the sender that completes its acknowledgement.
    type Handed = (String, oneshot::Sender<Result<(), String>>);

    /// Records what it is handed; each acknowledgement is completed by the
    /// test through the matching sender.
    struct Manual {
        sent: Arc<Mutex<Vec<Handed>>>,
    }

    #[async_trait]
    impl Transport for Manual {
        async fn send(&mut self, key: &str, _payload: &[u8]) -> Result<Ack, String> {
            let (tx, rx) = oneshot::channel();
            self.sent.lock().unwrap().push((key.to_string(), tx));
            Ok(Box::pin(async move {
                rx.await.unwrap_or(Err("dropped".into()))
            }))
        }
    }

    fn note(incident: u64, seq: u64) -> IncidentEvent {
        let id = IncidentId(ulid::Ulid::from_parts(incident, 1));
        event(
            summary(id),
            seq,
            Change::NoteAdded {
                text: seq.to_string(),
            },
        )
    }

    /// An outbound over a `Manual` transport, and what it was handed.
    fn manual() -> (Arc<Outbound>, Arc<Mutex<Vec<Handed>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let outbound = Outbound::start(
            "test".into(),
            EventFilter::default(),
            Duration::from_secs(5),
            2,
            Manual { sent: sent.clone() },
        );
        (outbound, sent)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hands_over_while_waiting_resends_failures_and_flush_waits_for_all() {
        let (outbound, sent) = manual();
        outbound.publish(&[note(1, 1)]);
        settle().await;
        // The first is not acknowledged yet; the next is handed over anyway.
        assert!(outbound.backlog_full().is_none(), "1 of 2");
        outbound.publish(&[note(2, 1)]);
        settle().await;
        assert_eq!(sent.lock().unwrap().len(), 2, "pipelined");
        let full = outbound.backlog_full().expect("2 unacknowledged of 2");
        assert!(full.contains("2 events not yet acknowledged"), "{full}");

        let flushed = {
            let outbound = outbound.clone();
            tokio::spawn(async move { outbound.flush().await })
        };
        let (first, second) = {
            let mut sent = sent.lock().unwrap();
            let second = sent.pop().unwrap();
            (sent.pop().unwrap(), second)
        };
        second.1.send(Ok(())).unwrap();
        first.1.send(Err("broker went away".into())).unwrap();
        settle().await;
        assert!(!flushed.is_finished(), "flush waits for the failed one");

        // Sent again after the backoff, then acknowledged: the flush ends.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let resent = sent.lock().unwrap().pop().expect("resent");
        assert_eq!(resent.0, first.0);
        resent.1.send(Ok(())).unwrap();
        assert!(flushed.await.unwrap().is_ok());
        assert!(outbound.backlog_full().is_none(), "all acknowledged");
    }

    #[tokio::test(start_paused = true)]
    async fn flush_fails_when_the_broker_never_answers() {
        let (outbound, _) = manual();
        outbound.publish(&[note(1, 1)]);
        let error = outbound.flush().await.unwrap_err();
        assert!(
            error.message.contains("1 events not acknowledged"),
            "{}",
            error.message
        );
    }
}
