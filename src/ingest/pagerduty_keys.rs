use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use incidentd_actors::model::{Alert, AlertStatus, Labels};
use incidentd_actors::ports::StoreError;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PagerDutyEvent;

/// What a PagerDuty trigger looked like, so a later acknowledge or resolve
/// (which carries only the routing and dedup keys) finds the same group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerKey {
    pub tenant: String,
    pub labels: Labels,
}

/// Trigger keys kept in memory in front of the store.
pub const PAGERDUTY_KEYS: usize = 100_000;

/// Where trigger keys persist: the store the shards use, so an acknowledge
/// or resolve finds its trigger after a restart and on every replica.
#[async_trait]
pub trait TriggerKeyStore: Send + Sync + 'static {
    /// Keeps `trigger` for `ttl` from now (replacing an earlier one).
    async fn put_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
        trigger: &TriggerKey,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// The trigger last kept for these keys, unless it expired.
    async fn get_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
    ) -> Result<Option<TriggerKey>, StoreError>;
}

/// (routing key, dedup key) -> the trigger's tenant and labels: written
/// through to the store, with the most recent `capacity` writes kept in
/// memory so a repeated trigger writes nothing and a lookup on the replica
/// that took the trigger does not read the store.
pub struct PagerDutyKeys {
    capacity: usize,
    ttl: Duration,
    store: Arc<dyn TriggerKeyStore>,
    inner: Mutex<Keys>,
}

/// (routing key, dedup key).
type KeyPair = (String, String);

/// A trigger this process took, and when the store took it (`None` while
/// it is being written, or when writing it failed).
#[derive(Clone)]
struct Remembered {
    trigger: TriggerKey,
    stored_at: Option<Instant>,
}

#[derive(Default)]
struct Keys {
    by_key: HashMap<KeyPair, Remembered>,
    /// Insertion order, oldest first, for forgetting past capacity.
    order: VecDeque<KeyPair>,
}

impl Keys {
    fn insert(&mut self, key: KeyPair, remembered: Remembered, capacity: usize) {
        if self.by_key.insert(key.clone(), remembered).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_key.remove(&oldest);
            }
        }
    }
}

/// Why an acknowledge or resolve cannot be turned into an action.
#[derive(Debug)]
pub enum KeyLookupError {
    /// No trigger carried this dedup key (or it expired).
    Unknown(UnknownDedupKey),
    /// The store could not be asked; the sender should retry.
    Unavailable(StoreError),
}

impl PagerDutyKeys {
    /// `ttl`: how long after its last trigger a key still finds it.
    pub fn new(capacity: usize, ttl: Duration, store: Arc<dyn TriggerKeyStore>) -> Self {
        PagerDutyKeys {
            capacity: capacity.max(1),
            ttl,
            store,
            inner: Mutex::new(Keys::default()),
        }
    }

    /// Stores the trigger unless the same one was stored recently. A store
    /// failure does not refuse the trigger (its alert matters more than a
    /// later resolve by key): it is logged, this process still finds the
    /// key, and the next trigger writes it again.
    async fn remember(&self, routing_key: &str, dedup_key: &str, trigger: TriggerKey) {
        let key = (routing_key.to_string(), dedup_key.to_string());
        // Stored again once half its time to live is gone, so a key that
        // keeps being triggered never expires in the store.
        if self.stored_within(&key, &trigger, self.ttl / 2) {
            return;
        }
        // Visible at once to an acknowledge or resolve racing this trigger.
        self.keep(
            key.clone(),
            Remembered {
                trigger: trigger.clone(),
                stored_at: None,
            },
        );
        match self
            .store
            .put_trigger(routing_key, dedup_key, &trigger, self.ttl)
            .await
        {
            Ok(()) => self.stored(&key, &trigger),
            Err(e) => {
                tracing::warn!(error = %e, dedup_key, "cannot store a PagerDuty trigger key; after a restart or on another replica its acknowledge or resolve will not find it");
                metrics::counter!(crate::telemetry::PAGERDUTY_KEYS_NOT_STORED).increment(1);
            }
        }
    }

    async fn find(&self, routing_key: &str, dedup_key: &str) -> Result<TriggerKey, KeyLookupError> {
        let key = (routing_key.to_string(), dedup_key.to_string());
        if let Some(remembered) = self.remembered(&key) {
            // Past its time to live only the store can say it was triggered again.
            if remembered
                .stored_at
                .is_none_or(|at| at.elapsed() < self.ttl)
            {
                return Ok(remembered.trigger);
            }
        }
        match self.store.get_trigger(routing_key, dedup_key).await {
            Ok(Some(trigger)) => Ok(trigger),
            Ok(None) => Err(KeyLookupError::Unknown(UnknownDedupKey(
                dedup_key.to_string(),
            ))),
            Err(e) => Err(KeyLookupError::Unavailable(e)),
        }
    }

    /// Whether this very trigger was stored for `key` less than `age` ago.
    fn stored_within(&self, key: &KeyPair, trigger: &TriggerKey, age: Duration) -> bool {
        let keys = self.inner.lock().expect("keys lock");
        keys.by_key.get(key).is_some_and(|r| {
            r.trigger == *trigger && r.stored_at.is_some_and(|at| at.elapsed() < age)
        })
    }

    fn remembered(&self, key: &KeyPair) -> Option<Remembered> {
        self.inner
            .lock()
            .expect("keys lock")
            .by_key
            .get(key)
            .cloned()
    }

    /// Marks `trigger` stored, unless a different trigger for the same key
    /// came meanwhile (its own write decides).
    fn stored(&self, key: &KeyPair, trigger: &TriggerKey) {
        let mut keys = self.inner.lock().expect("keys lock");
        if let Some(remembered) = keys.by_key.get_mut(key) {
            if remembered.trigger == *trigger {
                remembered.stored_at = Some(Instant::now());
            }
        }
    }

    fn keep(&self, key: KeyPair, remembered: Remembered) {
        self.inner
            .lock()
            .expect("keys lock")
            .insert(key, remembered, self.capacity);
    }
}

/// What a PagerDuty event asks for, once its dedup key is looked up.
#[derive(Debug, PartialEq)]
pub enum PagerDutyAction {
    /// A trigger or a resolve: an alert to submit.
    Alert(Alert),
    /// An acknowledge: for whatever incident `probe`'s group has now.
    Acknowledge { probe: Alert, actor: String },
}

/// An acknowledge or resolve whose dedup key no trigger here carried.
#[derive(Debug, PartialEq)]
pub struct UnknownDedupKey(pub String);

impl std::fmt::Display for UnknownDedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no open incident holds dedup_key {:?} for this routing_key; send a trigger first",
            self.0
        )
    }
}

impl PagerDutyKeys {
    /// Turns an event into its action, storing triggers so their later
    /// acknowledge or resolve finds the same group. Returns the dedup key too.
    pub async fn action(
        &self,
        event: PagerDutyEvent,
        tenant: &str,
    ) -> Result<(String, PagerDutyAction), KeyLookupError> {
        match event {
            PagerDutyEvent::Trigger {
                routing_key,
                dedup_key,
                alert,
            } => {
                let mut alert = *alert;
                alert.tenant = tenant.into();
                let trigger = TriggerKey {
                    tenant: tenant.to_string(),
                    labels: alert.labels.clone(),
                };
                self.remember(&routing_key, &dedup_key, trigger).await;
                Ok((dedup_key, PagerDutyAction::Alert(alert)))
            }
            PagerDutyEvent::Resolve {
                routing_key,
                dedup_key,
            } => {
                let trigger = self.find(&routing_key, &dedup_key).await?;
                let mut alert = Alert::firing(trigger.labels);
                alert.tenant = trigger.tenant.into();
                alert.fingerprint = dedup_key.as_str().into();
                alert.status = AlertStatus::Resolved;
                alert.source = "pagerduty".into();
                Ok((dedup_key, PagerDutyAction::Alert(alert)))
            }
            PagerDutyEvent::Acknowledge {
                routing_key,
                dedup_key,
            } => {
                let trigger = self.find(&routing_key, &dedup_key).await?;
                let mut probe = Alert::firing(trigger.labels);
                probe.tenant = trigger.tenant.into();
                let actor = format!(
                    "pagerduty:{}",
                    &routing_key.chars().take(6).collect::<String>()
                );
                Ok((dedup_key, PagerDutyAction::Acknowledge { probe, actor }))
            }
        }
    }
}

#[cfg(test)]
pub mod memory {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// In memory, for tests of what sits on top of the store; ignores the
    /// time to live, counts calls and can be made to fail.
    #[derive(Default)]
    pub struct MemoryTriggerKeys {
        keys: Mutex<HashMap<KeyPair, TriggerKey>>,
        pub writes: AtomicUsize,
        pub reads: AtomicUsize,
        pub failing: AtomicBool,
    }

    impl MemoryTriggerKeys {
        fn check(&self) -> Result<(), StoreError> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("test store is failing".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl TriggerKeyStore for MemoryTriggerKeys {
        async fn put_trigger(
            &self,
            routing_key: &str,
            dedup_key: &str,
            trigger: &TriggerKey,
            _ttl: Duration,
        ) -> Result<(), StoreError> {
            self.check()?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            let key = (routing_key.to_string(), dedup_key.to_string());
            self.keys.lock().unwrap().insert(key, trigger.clone());
            Ok(())
        }

        async fn get_trigger(
            &self,
            routing_key: &str,
            dedup_key: &str,
        ) -> Result<Option<TriggerKey>, StoreError> {
            self.check()?;
            self.reads.fetch_add(1, Ordering::Relaxed);
            let key = (routing_key.to_string(), dedup_key.to_string());
            Ok(self.keys.lock().unwrap().get(&key).cloned())
        }
    }

    /// A trigger from `source`, for store tests.
    pub fn trigger(source: &str) -> TriggerKey {
        TriggerKey {
            tenant: "t".into(),
            labels: Labels::from([("source".into(), source.into())]),
        }
    }

    /// Keys over a fresh memory store, as most tests need.
    pub fn keys(capacity: usize) -> PagerDutyKeys {
        PagerDutyKeys::new(
            capacity,
            Duration::from_secs(3600),
            Arc::new(MemoryTriggerKeys::default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use incidentd_actors::model::Timestamp;

    use super::memory::MemoryTriggerKeys;
    use super::*;
    use crate::ingest::decode_pagerduty;

    fn event(action: &str, routing_key: &str, dedup_key: &str) -> PagerDutyEvent {
        let body = serde_json::json!({
            "routing_key": routing_key,
            "dedup_key": dedup_key,
            "event_action": action,
            "payload": {"summary": "disk full", "source": "host1", "severity": "error"},
        });
        decode_pagerduty(
            &serde_json::to_vec(&body).unwrap(),
            Timestamp::from_millis(0),
        )
        .unwrap()
    }

    fn keys_over(store: &Arc<MemoryTriggerKeys>, capacity: usize) -> PagerDutyKeys {
        PagerDutyKeys::new(capacity, Duration::from_secs(3600), store.clone())
    }

    fn labels_of(action: PagerDutyAction) -> Labels {
        match action {
            PagerDutyAction::Alert(alert) => alert.labels,
            PagerDutyAction::Acknowledge { probe, .. } => probe.labels,
        }
    }

    #[tokio::test]
    async fn a_resolve_finds_its_trigger_after_a_restart() {
        let store = Arc::new(MemoryTriggerKeys::default());
        let (_, trigger) = keys_over(&store, 10)
            .action(event("trigger", "r", "d"), "t")
            .await
            .unwrap();
        // A new process over the same store: nothing in memory.
        let restarted = keys_over(&store, 10);
        let (_, resolve) = restarted
            .action(event("resolve", "r", "d"), "t")
            .await
            .unwrap();
        let PagerDutyAction::Alert(resolved) = resolve else {
            panic!("a resolve is an alert")
        };
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(resolved.fingerprint, "d");
        assert_eq!(
            resolved.labels,
            labels_of(trigger),
            "same labels, same group"
        );
    }

    #[tokio::test]
    async fn a_repeated_trigger_is_stored_once_and_lookups_are_cached() {
        let store = Arc::new(MemoryTriggerKeys::default());
        let keys = keys_over(&store, 10);
        for _ in 0..3 {
            keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        }
        keys.action(event("acknowledge", "r", "d"), "t")
            .await
            .unwrap();
        assert_eq!(store.writes.load(Ordering::Relaxed), 1);
        assert_eq!(store.reads.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn keys_past_the_memory_capacity_are_read_from_the_store() {
        let store = Arc::new(MemoryTriggerKeys::default());
        let keys = keys_over(&store, 2);
        for routing_key in ["r1", "r2", "r3"] {
            keys.action(event("trigger", routing_key, "d"), "t")
                .await
                .unwrap();
        }
        keys.action(event("acknowledge", "r3", "d"), "t")
            .await
            .unwrap();
        assert_eq!(store.reads.load(Ordering::Relaxed), 0, "r3 is in memory");
        keys.action(event("acknowledge", "r1", "d"), "t")
            .await
            .unwrap();
        assert_eq!(store.reads.load(Ordering::Relaxed), 1, "r1 was forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_still_triggered_is_stored_again_before_it_expires() {
        let store = Arc::new(MemoryTriggerKeys::default());
        let keys = keys_over(&store, 10); // time to live: one hour
        keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        tokio::time::advance(Duration::from_secs(29 * 60)).await;
        keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        assert_eq!(store.writes.load(Ordering::Relaxed), 1);
        tokio::time::advance(Duration::from_secs(2 * 60)).await;
        keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        assert_eq!(
            store.writes.load(Ordering::Relaxed),
            2,
            "half the ttl passed"
        );

        // Past the time to live, memory is not trusted: the store decides.
        tokio::time::advance(Duration::from_secs(3600)).await;
        keys.action(event("acknowledge", "r", "d"), "t")
            .await
            .unwrap();
        assert_eq!(store.reads.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn unknown_keys_and_a_failing_store_are_told_apart() {
        let store = Arc::new(MemoryTriggerKeys::default());
        let keys = keys_over(&store, 10);
        let unknown = keys.action(event("resolve", "r", "never"), "t").await;
        assert!(matches!(unknown, Err(KeyLookupError::Unknown(_))));

        store.failing.store(true, Ordering::Relaxed);
        let unavailable = keys.action(event("acknowledge", "r", "d"), "t").await;
        assert!(matches!(unavailable, Err(KeyLookupError::Unavailable(_))));
        // The trigger's alert still goes through; its key is stored by the
        // next trigger once the store is back.
        let (_, trigger) = keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        assert!(matches!(trigger, PagerDutyAction::Alert(_)));
        // This process still knows it (as before keys were stored).
        assert!(keys
            .action(event("acknowledge", "r", "d"), "t")
            .await
            .is_ok());
        store.failing.store(false, Ordering::Relaxed);
        keys.action(event("trigger", "r", "d"), "t").await.unwrap();
        assert_eq!(store.writes.load(Ordering::Relaxed), 1);
        let restarted = keys_over(&store, 10);
        assert!(restarted
            .action(event("acknowledge", "r", "d"), "t")
            .await
            .is_ok());
    }
}
