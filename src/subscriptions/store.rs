use async_trait::async_trait;
use incidentd_actors::ports::StoreError;
use ulid::Ulid;

use super::dead_letter::DeadLetter;
use super::subscription::Subscription;

/// Where subscriptions and their dead letters persist: the same store the
/// shards use (`store.kind`), so every replica sees the same subscriptions.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError>;
    async fn list(&self) -> Result<Vec<Subscription>, StoreError>;
    async fn get(&self, id: Ulid) -> Result<Option<Subscription>, StoreError>;
    /// Removes the subscription and its dead letters; false when there was none.
    async fn delete(&self, id: Ulid) -> Result<bool, StoreError>;
    /// Adds a dead letter, keeping the newest `keep`. Nothing is added for
    /// a subscription that no longer exists (deleted meanwhile, perhaps on
    /// another replica), so no list outlives its subscription.
    async fn add_dead_letter(
        &self,
        id: Ulid,
        letter: &DeadLetter,
        keep: usize,
    ) -> Result<(), StoreError>;
    /// Newest first.
    async fn dead_letters(&self, id: Ulid) -> Result<Vec<DeadLetter>, StoreError>;
}

#[cfg(test)]
pub mod memory {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    use super::*;

    /// In memory, for tests of what sits on top of the store.
    #[derive(Default)]
    pub struct MemorySubscriptions {
        subscriptions: Mutex<BTreeMap<Ulid, (Subscription, VecDeque<DeadLetter>)>>,
    }

    #[async_trait]
    impl SubscriptionStore for MemorySubscriptions {
        async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
            self.subscriptions
                .lock()
                .unwrap()
                .insert(subscription.id, (subscription.clone(), VecDeque::new()));
            Ok(())
        }

        async fn list(&self) -> Result<Vec<Subscription>, StoreError> {
            let all = self.subscriptions.lock().unwrap();
            Ok(all.values().map(|(s, _)| s.clone()).collect())
        }

        async fn get(&self, id: Ulid) -> Result<Option<Subscription>, StoreError> {
            let all = self.subscriptions.lock().unwrap();
            Ok(all.get(&id).map(|(s, _)| s.clone()))
        }

        async fn delete(&self, id: Ulid) -> Result<bool, StoreError> {
            Ok(self.subscriptions.lock().unwrap().remove(&id).is_some())
        }

        async fn add_dead_letter(
            &self,
            id: Ulid,
            letter: &DeadLetter,
            keep: usize,
        ) -> Result<(), StoreError> {
            if let Some((_, letters)) = self.subscriptions.lock().unwrap().get_mut(&id) {
                letters.push_front(letter.clone());
                letters.truncate(keep);
            }
            Ok(())
        }

        async fn dead_letters(&self, id: Ulid) -> Result<Vec<DeadLetter>, StoreError> {
            let all = self.subscriptions.lock().unwrap();
            Ok(all
                .get(&id)
                .map(|(_, letters)| letters.iter().cloned().collect())
                .unwrap_or_default())
        }
    }
}

/// What every `SubscriptionStore` must do, run against each of them.
#[cfg(test)]
pub mod contract {
    use incidentd_actors::model::{EventKind, IncidentId, Timestamp};

    use super::*;
    use crate::bus::EventFilter;

    fn subscription(n: u64) -> Subscription {
        Subscription {
            id: Ulid::from_parts(n, n.into()),
            url: format!("http://receiver/{n}"),
            secret: Some("s".into()),
            filter: EventFilter::default(),
            description: None,
            created_at: Timestamp(n as i64),
        }
    }

    fn letter(n: u32) -> DeadLetter {
        DeadLetter {
            event_id: format!("event-{n}"),
            kind: EventKind::Created,
            incident_id: IncidentId(Ulid::from_parts(9, 9)),
            attempts: n,
            last_error: "receiver answered 500".into(),
            last_status: Some(500),
            failed_at: Timestamp(n.into()),
        }
    }

    /// Leaves one subscription (number 2) stored, for a reopen check.
    pub async fn keeps_subscriptions_and_the_newest_dead_letters(store: &dyn SubscriptionStore) {
        let (a, b) = (subscription(1), subscription(2));
        store.put(&a).await.unwrap();
        store.put(&b).await.unwrap();
        let mut listed = store.list().await.unwrap();
        listed.sort_by_key(|s| s.id);
        assert_eq!(listed, vec![a.clone(), b.clone()]);
        assert_eq!(store.get(b.id).await.unwrap(), Some(b.clone()));
        assert_eq!(store.get(subscription(3).id).await.unwrap(), None);

        for n in 1..=5 {
            store.add_dead_letter(a.id, &letter(n), 3).await.unwrap();
        }
        let kept: Vec<u32> = store
            .dead_letters(a.id)
            .await
            .unwrap()
            .iter()
            .map(|l| l.attempts)
            .collect();
        assert_eq!(kept, vec![5, 4, 3], "the newest three, newest first");

        let gone = subscription(3);
        store.add_dead_letter(gone.id, &letter(1), 3).await.unwrap();
        assert!(
            store.dead_letters(gone.id).await.unwrap().is_empty(),
            "no list without its subscription"
        );

        assert!(store.delete(a.id).await.unwrap());
        assert!(!store.delete(a.id).await.unwrap());
        assert!(store.dead_letters(a.id).await.unwrap().is_empty());
        assert_eq!(store.list().await.unwrap(), vec![b]);
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        let store = super::memory::MemorySubscriptions::default();
        keeps_subscriptions_and_the_newest_dead_letters(&store).await;
    }
}
