//! PagerDuty trigger keys in Redis, where every replica finds them:
//!
//! - `<prefix>:pagerduty-key:<length of routing key>:<routing key>:<dedup key>`
//!   STRING, the trigger as JSON, expiring after the keys' time to live
//!
//! The length prefix keeps ("a:b", "c") and ("a", "b:c") apart. No hash
//! tag: each key is read and written alone, so they spread over a cluster.

use std::time::Duration;

use async_trait::async_trait;
use incidentd_actors::ports::StoreError;

use super::json::{decode, encode};
use super::redis::RedisStore;
use crate::ingest::pagerduty_keys::{TriggerKey, TriggerKeyStore};

impl RedisStore {
    fn trigger_key(&self, routing_key: &str, dedup_key: &str) -> String {
        format!(
            "{}:pagerduty-key:{}:{routing_key}:{dedup_key}",
            self.key_prefix,
            routing_key.len()
        )
    }
}

#[async_trait]
impl TriggerKeyStore for RedisStore {
    async fn put_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
        trigger: &TriggerKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let () = self
            .run(
                "pagerduty_keys",
                "store a PagerDuty trigger key",
                redis::cmd("SET")
                    .arg(self.trigger_key(routing_key, dedup_key))
                    .arg(encode(trigger))
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    async fn get_trigger(
        &self,
        routing_key: &str,
        dedup_key: &str,
    ) -> Result<Option<TriggerKey>, StoreError> {
        let mut connection = self.connection.clone();
        let stored: Option<Vec<u8>> = self
            .run(
                "pagerduty_keys",
                "read a PagerDuty trigger key",
                redis::cmd("GET")
                    .arg(self.trigger_key(routing_key, dedup_key))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(stored.and_then(|json| decode("PagerDuty trigger key", &json)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::redis::testing::test_config;
    use super::*;
    use crate::ingest::pagerduty_keys::memory::trigger;

    #[tokio::test]
    async fn every_replica_finds_a_trigger_and_redis_expires_it() {
        let config = test_config();
        let store = RedisStore::connect(&config).await.unwrap();
        let hour = Duration::from_secs(3600);
        store
            .put_trigger("a:b", "c", &trigger("1"), hour)
            .await
            .unwrap();
        store
            .put_trigger("a", "b:c", &trigger("2"), hour)
            .await
            .unwrap();

        let other = RedisStore::connect(&config).await.unwrap();
        assert_eq!(
            other.get_trigger("a:b", "c").await.unwrap(),
            Some(trigger("1"))
        );
        assert_eq!(
            other.get_trigger("a", "b:c").await.unwrap(),
            Some(trigger("2"))
        );
        assert_eq!(other.get_trigger("a", "never").await.unwrap(), None);

        // Redis expires them: each carries the time to live it was given.
        let mut connection = other.connection.clone();
        let keys: Vec<String> = [("a:b", "c"), ("a", "b:c")]
            .iter()
            .map(|(r, d)| other.trigger_key(r, d))
            .collect();
        for key in &keys {
            let left: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(0 < left && left <= 3_600_000, "{key}: {left} ms to live");
        }
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}
