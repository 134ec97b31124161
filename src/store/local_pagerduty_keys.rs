//! PagerDuty trigger keys in the embedded store: two redb tables in the
//! same file as the snapshots.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use incidentd_actors::ports::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::json::{decode, encode};
use super::local::{blocking, unavailable, LocalStore};
use crate::ingest::pagerduty_keys::{TriggerKey, TriggerKeyStore};

/// (routing key, dedup key) -> (expires at, unix ms; trigger as JSON).
const TRIGGER_KEYS: TableDefinition<(&str, &str), (u64, &[u8])> =
    TableDefinition::new("pagerduty_trigger_keys");
/// (expires at, routing key, dedup key), to drop expired keys oldest first.
const TRIGGER_KEY_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("pagerduty_trigger_key_expiry");

/// Expired keys dropped by each write: writes are the only way keys are
/// added, so this keeps the tables bounded by what the time to live allows.
const PRUNE_PER_WRITE: usize = 16;

/// Called when the store opens, so reads never meet a missing table.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(TRIGGER_KEYS)
        .map_err(|e| unavailable("create table", e))?;
    txn.open_table(TRIGGER_KEY_EXPIRY)
        .map_err(|e| unavailable("create table", e))?;
    Ok(())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LocalStore {
    fn put_trigger_blocking(
        &self,
        routing_key: &str,
        dedup_key: &str,
        trigger: &TriggerKey,
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        let json = encode(trigger);
        let expires = now.saturating_add(ttl.as_millis() as u64);
        let txn = self.write()?;
        {
            let mut keys = txn
                .open_table(TRIGGER_KEYS)
                .map_err(|e| unavailable("open table", e))?;
            let mut expiry = txn
                .open_table(TRIGGER_KEY_EXPIRY)
                .map_err(|e| unavailable("open table", e))?;
            let replaced = keys
                .insert((routing_key, dedup_key), (expires, json.as_slice()))
                .map_err(|e| unavailable("write", e))?
                .map(|old| old.value().0);
            if let Some(old_expires) = replaced {
                expiry
                    .remove((old_expires, routing_key, dedup_key))
                    .map_err(|e| unavailable("write", e))?;
            }
            expiry
                .insert((expires, routing_key, dedup_key), ())
                .map_err(|e| unavailable("write", e))?;
            let mut expired = Vec::new();
            for entry in expiry
                .range((0, "", "")..(now, "", ""))
                .map_err(|e| unavailable("read", e))?
                .take(PRUNE_PER_WRITE)
            {
                let (key, _) = entry.map_err(|e| unavailable("read", e))?;
                let (at, routing, dedup) = key.value();
                expired.push((at, routing.to_string(), dedup.to_string()));
            }
            for (at, routing, dedup) in expired {
                expiry
                    .remove((at, routing.as_str(), dedup.as_str()))
                    .map_err(|e| unavailable("write", e))?;
                keys.remove((routing.as_str(), dedup.as_str()))
                    .map_err(|e| unavailable("write", e))?;
            }
        }
        // Durable before the trigger is acknowledged, or its acknowledge
        // after a crash finds nothing; concurrent triggers share the flush.
        self.commit_shared(txn)
    }

    fn get_trigger_blocking(
        &self,
        routing_key: &str,
        dedup_key: &str,
        now: u64,
    ) -> Result<Option<TriggerKey>, StoreError> {
        let keys = self.read_table(TRIGGER_KEYS)?;
        let stored = keys
            .get((routing_key, dedup_key))
            .map_err(|e| unavailable("read", e))?;
        Ok(stored.and_then(|guard| {
            let (expires, json) = guard.value();
            (expires > now)
                .then(|| decode("PagerDuty trigger key", json))
                .flatten()
        }))
    }

    #[cfg(test)]
    fn trigger_key_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let keys = self.read_table(TRIGGER_KEYS)?;
        keys.len().map_err(|e| unavailable("read", e))
    }
}

#[async_trait]
impl TriggerKeyStore for LocalStore {
    async fn put_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
        trigger: &TriggerKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (routing_key, dedup_key, trigger) = (
            routing_key.to_string(),
            dedup_key.to_string(),
            trigger.clone(),
        );
        blocking(self, move |store| {
            store.put_trigger_blocking(&routing_key, &dedup_key, &trigger, ttl, now_millis())
        })
        .await
    }

    async fn get_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
    ) -> Result<Option<TriggerKey>, StoreError> {
        let (routing_key, dedup_key) = (routing_key.to_string(), dedup_key.to_string());
        blocking(self, move |store| {
            store.get_trigger_blocking(&routing_key, &dedup_key, now_millis())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::pagerduty_keys::memory::trigger;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn keys_survive_reopening_and_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put_trigger_blocking("r", "d", &trigger("a"), HOUR, 1_000)
            .unwrap();
        store
            .put_trigger_blocking("r", "d", &trigger("b"), HOUR, 2_000)
            .unwrap();
        // A commit without fsync becomes durable with the next durable one,
        // as the trigger's shard flush does in the service.
        store.write().unwrap().commit().unwrap();
        drop(store);

        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get_trigger_blocking("r", "d", 3_000).unwrap(),
            Some(trigger("b"))
        );
        assert_eq!(
            store.get_trigger_blocking("other", "d", 3_000).unwrap(),
            None
        );
        assert_eq!(store.trigger_key_count().unwrap(), 1);
    }

    #[test]
    fn expired_keys_are_not_found_and_are_dropped_by_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let minute = Duration::from_secs(60);
        for dedup in ["d1", "d2", "d3"] {
            store
                .put_trigger_blocking("r", dedup, &trigger("a"), minute, 0)
                .unwrap();
        }
        // Re-triggered later: its earlier expiry no longer applies.
        store
            .put_trigger_blocking("r", "d3", &trigger("a"), minute, 50_000)
            .unwrap();
        let later = 61_000;
        assert_eq!(store.get_trigger_blocking("r", "d1", later).unwrap(), None);
        assert_eq!(
            store.get_trigger_blocking("r", "d3", later).unwrap(),
            Some(trigger("a"))
        );
        store
            .put_trigger_blocking("r", "d4", &trigger("a"), minute, later)
            .unwrap();
        assert_eq!(
            store.trigger_key_count().unwrap(),
            2,
            "d1 and d2 expired and were dropped; d3 and d4 remain"
        );
    }
}
