//! The subscriptions this replica delivers for: created and deleted through
//! the API, persisted in the store, and reloaded from it periodically so
//! that every replica runs every subscription.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use incidentd_actors::model::Timestamp;
use incidentd_actors::ports::StoreError;
use tokio::task::JoinHandle;
use ulid::Ulid;

use super::config::SubscriptionsConfig;
use super::dead_letter::DeadLetter;
use super::stats::DeliveryCounts;
use super::store::SubscriptionStore;
use super::subscription::{NewSubscription, Subscription};
use super::worker::Worker;
use crate::bus::{EventListener, SharedEvent};
use crate::webhook::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{0}")]
    Invalid(String),
    #[error("there are already {max} subscriptions (subscriptions.max_subscriptions); delete one or raise the limit")]
    TooMany { max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a subscription failed to deliver, and how its deliveries went.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    /// The newest `subscriptions.dead_letter_keep`, newest first.
    pub dead_letters: Vec<DeadLetter>,
    /// Since this replica started; each replica delivers the events of the
    /// shards it owns.
    pub counts: DeliveryCounts,
}

pub struct Subscriptions {
    store: Arc<dyn SubscriptionStore>,
    config: SubscriptionsConfig,
    /// Shared by every subscription: it pools connections.
    client: reqwest::Client,
    /// A std mutex: the bus listener reads it synchronously, and nothing
    /// holds it across an await.
    workers: Mutex<HashMap<Ulid, Worker>>,
    /// Create, delete and refresh one at a time, so a refresh that listed
    /// the store just before a create cannot stop the new subscription.
    changes: tokio::sync::Mutex<()>,
    refresher: Mutex<Option<JoinHandle<()>>>,
}

impl Subscriptions {
    /// Starts delivering for every stored subscription, and reloads them
    /// every `refresh_interval`. Deliveries go through `client`.
    pub async fn start(
        store: Arc<dyn SubscriptionStore>,
        config: SubscriptionsConfig,
        client: reqwest::Client,
    ) -> Result<Arc<Subscriptions>, SubscriptionError> {
        let subscriptions = Arc::new(Subscriptions {
            store,
            config,
            client,
            workers: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            refresher: Mutex::new(None),
        });
        subscriptions.refresh().await?;
        let refresher = tokio::spawn(refresh_every(
            subscriptions.config.refresh_interval,
            Arc::downgrade(&subscriptions),
        ));
        *subscriptions.refresher.lock().expect("refresher lock") = Some(refresher);
        Ok(subscriptions)
    }

    pub async fn create(&self, new: NewSubscription) -> Result<Subscription, SubscriptionError> {
        let now = Timestamp::from_datetime(chrono::Utc::now());
        let subscription = new
            .into_subscription(now)
            .map_err(SubscriptionError::Invalid)?;
        let _changing = self.changes.lock().await;
        let max = self.config.max_subscriptions;
        if self.store.list().await?.len() >= max {
            return Err(SubscriptionError::TooMany { max });
        }
        self.store.put(&subscription).await?;
        self.run(&subscription);
        tracing::info!(subscription = %subscription.id, "subscription created");
        Ok(subscription)
    }

    /// From the store, so every replica lists the same, oldest first.
    pub async fn list(&self) -> Result<Vec<Subscription>, SubscriptionError> {
        let mut all = self.store.list().await?;
        all.sort_by_key(|s| s.id);
        Ok(all)
    }

    pub async fn get(&self, id: Ulid) -> Result<Option<Subscription>, SubscriptionError> {
        Ok(self.store.get(id).await?)
    }

    /// Stops this replica's deliveries at once (an attempt in flight is
    /// abandoned); other replicas stop at their next refresh. False when
    /// there was no such subscription.
    pub async fn delete(&self, id: Ulid) -> Result<bool, SubscriptionError> {
        let _changing = self.changes.lock().await;
        let existed = self.store.delete(id).await?;
        if let Some(worker) = self.workers.lock().expect("workers lock").remove(&id) {
            worker.abort();
        }
        if existed {
            tracing::info!(subscription = %id, "subscription deleted");
        }
        Ok(existed)
    }

    /// `None` when there is no such subscription.
    pub async fn deliveries(&self, id: Ulid) -> Result<Option<Deliveries>, SubscriptionError> {
        if self.get(id).await?.is_none() {
            return Ok(None);
        }
        let dead_letters = self.store.dead_letters(id).await?;
        let counts = self
            .workers
            .lock()
            .expect("workers lock")
            .get(&id)
            .map(Worker::counts)
            .unwrap_or_default();
        Ok(Some(Deliveries {
            dead_letters,
            counts,
        }))
    }

    /// Runs what the store holds and stops what it no longer does.
    async fn refresh(&self) -> Result<(), SubscriptionError> {
        let _changing = self.changes.lock().await;
        let stored = self.store.list().await?;
        let gone: Vec<Worker> = {
            let mut workers = self.workers.lock().expect("workers lock");
            let ids: Vec<Ulid> = workers
                .keys()
                .filter(|id| !stored.iter().any(|s| s.id == **id))
                .copied()
                .collect();
            ids.iter().filter_map(|id| workers.remove(id)).collect()
        };
        let stopped = gone.len();
        // Deleted on another replica: stop as `delete` does here, without
        // sending what is still queued.
        gone.into_iter().for_each(Worker::abort);
        let mut started = 0;
        for subscription in &stored {
            if !self.is_running(subscription.id) {
                self.run(subscription);
                started += 1;
            }
        }
        if started > 0 || stopped > 0 {
            tracing::info!(
                running = stored.len(),
                started,
                stopped,
                "subscriptions reloaded from the store"
            );
        }
        Ok(())
    }

    fn is_running(&self, id: Ulid) -> bool {
        self.workers.lock().expect("workers lock").contains_key(&id)
    }

    fn run(&self, subscription: &Subscription) {
        let target = Arc::new(Endpoint::new(
            self.client.clone(),
            subscription.url.clone(),
            subscription.secret.clone(),
            self.config.timeout,
        ));
        let worker = Worker::spawn(subscription, target, self.store.clone(), &self.config);
        self.workers
            .lock()
            .expect("workers lock")
            .insert(subscription.id, worker);
    }

    /// Takes no more events and lets queued ones go out, within `timeout`;
    /// then stops what is left.
    pub async fn stop(&self, timeout: Duration) {
        if let Some(refresher) = self.refresher.lock().expect("refresher lock").take() {
            refresher.abort();
        }
        let workers: Vec<Worker> = self
            .workers
            .lock()
            .expect("workers lock")
            .drain()
            .map(|(_, worker)| worker)
            .collect();
        let mut tasks: Vec<JoinHandle<()>> = workers.into_iter().map(Worker::close).collect();
        let drain = async {
            for task in &mut tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!("subscriptions still delivering at the shutdown deadline; stopped");
            for task in tasks {
                task.abort();
            }
        }
    }
}

impl EventListener for Subscriptions {
    fn on_event(&self, event: &Arc<SharedEvent>) {
        for worker in self.workers.lock().expect("workers lock").values() {
            worker.offer(event);
        }
    }
}

/// Reloads until the subscriptions are stopped (or dropped). A failed
/// reload keeps what runs and is tried again at the next tick.
async fn refresh_every(interval: Duration, subscriptions: Weak<Subscriptions>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(subscriptions) = subscriptions.upgrade() else {
            return;
        };
        if let Err(e) = subscriptions.refresh().await {
            tracing::warn!(error = %e, "cannot reload subscriptions; keeping the running ones");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventFilter;
    use crate::subscriptions::memory::MemorySubscriptions;

    fn config() -> SubscriptionsConfig {
        SubscriptionsConfig {
            max_subscriptions: 2,
            refresh_interval: Duration::from_secs(1),
            ..SubscriptionsConfig::default()
        }
    }

    fn new() -> NewSubscription {
        NewSubscription {
            url: "http://receiver.invalid/hook".into(),
            secret: None,
            filter: EventFilter::default(),
            description: None,
        }
    }

    /// Two replicas sharing one store.
    async fn replicas() -> (Arc<Subscriptions>, Arc<Subscriptions>) {
        let store = Arc::new(MemorySubscriptions::default());
        let start = || Subscriptions::start(store.clone(), config(), reqwest::Client::new());
        (start().await.unwrap(), start().await.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn creations_and_deletions_reach_the_other_replicas_at_the_next_refresh() {
        let (here, there) = replicas().await;
        let id = here.create(new()).await.unwrap().id;
        assert!(here.is_running(id));
        assert!(!there.is_running(id), "not before the refresh");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(there.is_running(id));

        assert!(there.delete(id).await.unwrap());
        assert!(!there.is_running(id));
        assert!(here.is_running(id), "not before the refresh");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(!here.is_running(id));
        assert!(!here.delete(id).await.unwrap(), "already gone");
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_of_subscriptions_is_bounded() {
        let (here, _) = replicas().await;
        here.create(new()).await.unwrap();
        here.create(new()).await.unwrap();
        let refused = here.create(new()).await.unwrap_err();
        assert!(
            matches!(refused, SubscriptionError::TooMany { max: 2 }),
            "{refused}"
        );
        assert_eq!(here.list().await.unwrap().len(), 2);
    }
}
