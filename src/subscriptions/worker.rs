//! One subscription's delivery: a bounded queue filled by the bus listener
//! without blocking, and one task that posts the queued events in order,
//! each with retries, dead-lettering those it gives up on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use ulid::Ulid;

use super::config::SubscriptionsConfig;
use super::dead_letter::DeadLetter;
use super::stats::{DeliveryCounts, DeliveryStats};
use super::store::SubscriptionStore;
use super::subscription::Subscription;
use crate::bus::{EventFilter, SharedEvent};
use crate::sinks::{CloudEvent, SOURCE};
use crate::webhook::{deliver, Post, Request, Retry};

/// The CloudEvents structured mode: the whole envelope is the body.
const CONTENT_TYPE: &str = "application/cloudevents+json";

/// Events that found the queue full, waiting for the task to store them as
/// dead letters (the listener cannot wait for the store). Only the newest
/// `dead_letter_keep` are held: the store would drop older ones anyway.
type Overflow = Arc<Mutex<VecDeque<DeadLetter>>>;

/// A running subscription, as the bus listener sees it.
pub struct Worker {
    filter: EventFilter,
    queue: mpsc::Sender<Arc<SharedEvent>>,
    overflow: Overflow,
    keep: usize,
    stats: Arc<DeliveryStats>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Starts delivering `subscription`'s events to `target`.
    pub fn spawn(
        subscription: &Subscription,
        target: Arc<dyn Post>,
        store: Arc<dyn SubscriptionStore>,
        config: &SubscriptionsConfig,
    ) -> Worker {
        let (queue, events) = mpsc::channel(config.queue_capacity.max(1));
        let overflow = Overflow::default();
        let stats = Arc::new(DeliveryStats::default());
        let delivery = Delivery {
            id: subscription.id,
            name: format!("subscription {}", subscription.id),
            target,
            store,
            retry: config.retry(),
            keep: config.dead_letter_keep,
            overflow: overflow.clone(),
            stats: stats.clone(),
        };
        Worker {
            filter: subscription.filter.clone(),
            queue,
            overflow,
            keep: config.dead_letter_keep,
            stats,
            task: tokio::spawn(delivery.run(events)),
        }
    }

    /// Queues `event` if the filter takes it; never waits. With the queue
    /// full it becomes a dead letter at once.
    pub fn offer(&self, event: &Arc<SharedEvent>) {
        if !self.filter.matches(event) {
            return;
        }
        let Err(TrySendError::Full(event)) = self.queue.try_send(event.clone()) else {
            // Queued, or closed because the subscription is stopping.
            return;
        };
        self.stats.dropped_queue_full();
        let mut overflow = self.overflow.lock().expect("overflow lock");
        if overflow.is_empty() {
            // Once per burst, not per event.
            tracing::warn!(event = %event.id, "subscription queue full; events go to its dead-letter list");
        }
        if overflow.len() == self.keep {
            overflow.pop_front();
        }
        overflow.push_back(DeadLetter::queue_full(&event));
    }

    pub fn counts(&self) -> DeliveryCounts {
        self.stats.counts()
    }

    /// Takes no more events; what is queued still goes out, then the task
    /// ends (the returned handle).
    pub fn close(self) -> JoinHandle<()> {
        self.task
    }

    /// Stops at once, mid-delivery if need be.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The task's side.
struct Delivery {
    id: Ulid,
    /// For logs.
    name: String,
    target: Arc<dyn Post>,
    store: Arc<dyn SubscriptionStore>,
    retry: Retry,
    keep: usize,
    overflow: Overflow,
    stats: Arc<DeliveryStats>,
}

impl Delivery {
    async fn run(self, mut events: mpsc::Receiver<Arc<SharedEvent>>) {
        while let Some(event) = events.recv().await {
            // Overflow happens only while events are queued, so it is
            // stored before the next of them goes out.
            self.store_overflow().await;
            self.deliver(&event).await;
        }
        self.store_overflow().await;
    }

    async fn deliver(&self, event: &SharedEvent) {
        let envelope = CloudEvent::of(event);
        let body = event.cloudevent();
        let headers = [
            ("ce-specversion", envelope.specversion),
            ("ce-id", envelope.id),
            ("ce-type", envelope.event_type.as_str()),
            ("ce-source", SOURCE),
        ];
        let request = Request {
            body,
            content_type: CONTENT_TYPE,
            idempotency_key: &event.id,
            headers: &headers,
        };
        let outcome = deliver(self.target.as_ref(), &request, &self.retry, &self.name).await;
        self.stats.retried(outcome.attempts - 1);
        match outcome.result {
            Ok(()) => self.stats.delivered(),
            Err(failure) => {
                tracing::warn!(subscription = %self.id, event = %event.id, attempts = outcome.attempts, error = %failure.error, "subscription gave up on an event; dead-lettered");
                self.stats.dead_lettered();
                self.store_dead_letter(DeadLetter::new(event, outcome.attempts, failure))
                    .await;
            }
        }
    }

    async fn store_overflow(&self) {
        let letters: Vec<DeadLetter> = self
            .overflow
            .lock()
            .expect("overflow lock")
            .drain(..)
            .collect();
        for letter in letters {
            self.store_dead_letter(letter).await;
        }
    }

    async fn store_dead_letter(&self, letter: DeadLetter) {
        if let Err(e) = self
            .store
            .add_dead_letter(self.id, &letter, self.keep)
            .await
        {
            // Counted already; the log keeps the event id.
            tracing::error!(subscription = %self.id, event = %letter.event_id, error = %e, "cannot store a dead letter");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use incidentd_actors::model::{Change, IncidentId, Severity, Timestamp};

    use super::*;
    use crate::subscriptions::store::memory::MemorySubscriptions;
    use crate::test_support::{event, summary};
    use crate::webhook::scripted::{failed, Scripted};

    fn config() -> SubscriptionsConfig {
        SubscriptionsConfig {
            queue_capacity: 1,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            dead_letter_keep: 10,
            ..SubscriptionsConfig::default()
        }
    }

    fn critical_only() -> Subscription {
        Subscription {
            id: Ulid::from_parts(1, 1),
            url: "http://receiver/".into(),
            secret: None,
            filter: EventFilter {
                severities: vec![Severity::Critical],
                ..EventFilter::default()
            },
            description: None,
            created_at: Timestamp(0),
        }
    }

    fn note(incident: u64, severity: Severity) -> Arc<SharedEvent> {
        let mut summary = summary(IncidentId(Ulid::from_parts(incident, 1)));
        summary.severity = severity;
        Arc::new(SharedEvent::new(event(
            summary,
            2,
            Change::NoteAdded { text: "n".into() },
        )))
    }

    async fn started(
        script: Vec<crate::webhook::Attempt>,
    ) -> (Worker, Arc<Scripted>, Arc<MemorySubscriptions>) {
        let subscription = critical_only();
        let target = Arc::new(Scripted::new(script));
        let store = Arc::new(MemorySubscriptions::default());
        store.put(&subscription).await.unwrap();
        let worker = Worker::spawn(&subscription, target.clone(), store.clone(), &config());
        (worker, target, store)
    }

    #[tokio::test(start_paused = true)]
    async fn dead_letters_after_max_attempts_then_delivers_the_next_in_order() {
        let (worker, target, store) = started(vec![failed(500), failed(502), failed(503)]).await;
        let (first, second) = (note(1, Severity::Critical), note(2, Severity::Critical));
        worker.offer(&first);
        tokio::time::sleep(Duration::from_millis(1)).await;
        worker.offer(&note(3, Severity::Warning));
        worker.offer(&second);
        tokio::time::sleep(Duration::from_secs(10)).await;

        assert_eq!(
            target.keys(),
            vec![
                first.id.clone(),
                first.id.clone(),
                first.id.clone(),
                second.id.clone()
            ],
            "three attempts at the first, then the second; the warning is filtered out"
        );
        assert_eq!(target.gaps(), vec![100, 200, 0]);
        let letters = store.dead_letters(critical_only().id).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].event_id, first.id);
        assert_eq!(letters[0].attempts, 3);
        assert_eq!(letters[0].last_status, Some(503));
        assert_eq!(
            worker.counts(),
            DeliveryCounts {
                delivered: 1,
                retried: 2,
                dead_lettered: 1,
                dropped_queue_full: 0,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_dead_letters_at_once_and_is_counted() {
        let (worker, target, store) = started(Vec::new()).await;
        let events: Vec<_> = (1..=3).map(|i| note(i, Severity::Critical)).collect();
        // The task has not run yet: the first fills the queue of one.
        for event in &events {
            worker.offer(event);
        }
        assert_eq!(worker.counts().dropped_queue_full, 2);
        worker.close().await.unwrap();

        assert_eq!(target.keys(), vec![events[0].id.clone()]);
        let letters = store.dead_letters(critical_only().id).await.unwrap();
        let dead: Vec<(&str, u32, &str)> = letters
            .iter()
            .map(|l| (l.event_id.as_str(), l.attempts, l.last_error.as_str()))
            .collect();
        assert_eq!(
            dead,
            vec![
                (events[2].id.as_str(), 0, "queue full"),
                (events[1].id.as_str(), 0, "queue full"),
            ],
            "newest first"
        );
    }
}
