//! Subscriptions in Redis, where every replica reads them:
//!
//! - `<prefix>:{subscriptions}`                     HASH subscription id -> JSON
//! - `<prefix>:{subscriptions}:dead-letters:<id>`   LIST of JSON, newest first, capped
//!
//! The shared hash tag puts them in one Redis Cluster slot, so deleting a
//! subscription with its list is one transaction and adding a dead letter
//! can check, in the same script, that the subscription still exists. They
//! are few and small (bounded lists), so one slot holds them easily.

use std::sync::LazyLock;

use async_trait::async_trait;
use incidentd_actors::ports::StoreError;
use redis::Script;
use ulid::Ulid;

use super::json::{decode, encode};
use super::redis::RedisStore;
use crate::subscriptions::{DeadLetter, Subscription, SubscriptionStore};

/// KEYS: the subscriptions hash, the subscription's list. ARGV: its id,
/// the dead letter, how many to keep. Adds nothing for a subscription
/// deleted meanwhile, so no list outlives its subscription.
static ADD_DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"#,
    )
});

impl RedisStore {
    fn subscriptions_key(&self) -> String {
        format!("{}:{{subscriptions}}", self.key_prefix)
    }

    fn dead_letters_key(&self, id: Ulid) -> String {
        format!("{}:{{subscriptions}}:dead-letters:{id}", self.key_prefix)
    }
}

#[async_trait]
impl SubscriptionStore for RedisStore {
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let json = encode(subscription);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .run(
                "subscriptions",
                "store a subscription",
                redis::cmd("HSET")
                    .arg(self.subscriptions_key())
                    .arg(subscription.id.to_string())
                    .arg(json)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Subscription>, StoreError> {
        let stored = self
            .scan_hash(
                &self.subscriptions_key(),
                "subscriptions",
                "read subscriptions",
            )
            .await?;
        Ok(stored
            .values()
            .filter_map(|json| decode("subscription", json))
            .collect())
    }

    async fn get(&self, id: Ulid) -> Result<Option<Subscription>, StoreError> {
        let mut connection = self.connection.clone();
        let stored: Option<Vec<u8>> = self
            .run(
                "subscriptions",
                "read a subscription",
                redis::cmd("HGET")
                    .arg(self.subscriptions_key())
                    .arg(id.to_string())
                    .query_async(&mut connection),
            )
            .await?;
        Ok(stored.and_then(|json| decode("subscription", &json)))
    }

    async fn delete(&self, id: Ulid) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .hdel(self.subscriptions_key(), id.to_string())
            .del(self.dead_letters_key(id))
            .ignore();
        let (removed,): (i64,) = self
            .run(
                "subscriptions",
                "delete a subscription",
                transaction.query_async(&mut connection),
            )
            .await?;
        Ok(removed == 1)
    }

    async fn add_dead_letter(
        &self,
        id: Ulid,
        letter: &DeadLetter,
        keep: usize,
    ) -> Result<(), StoreError> {
        let json = encode(letter);
        let mut invocation = ADD_DEAD_LETTER.prepare_invoke();
        invocation
            .key(self.subscriptions_key())
            .key(self.dead_letters_key(id))
            .arg(id.to_string())
            .arg(json)
            .arg(keep);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .run(
                "subscriptions",
                "store a dead letter",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, id: Ulid) -> Result<Vec<DeadLetter>, StoreError> {
        let mut connection = self.connection.clone();
        let stored: Vec<Vec<u8>> = self
            .run(
                "subscriptions",
                "read dead letters",
                redis::cmd("LRANGE")
                    .arg(self.dead_letters_key(id))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(stored
            .iter()
            .filter_map(|json| decode("dead letter", json))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::redis::testing::test_config;
    use super::*;
    use crate::subscriptions::contract;

    #[tokio::test]
    async fn keeps_subscriptions_and_the_newest_dead_letters() {
        let config = test_config();
        let store = RedisStore::connect(&config).await.unwrap();
        contract::keeps_subscriptions_and_the_newest_dead_letters(&store).await;
        // Another replica (a new handle) sees the same.
        let other = RedisStore::connect(&config).await.unwrap();
        let left = other.list().await.unwrap();
        assert_eq!(left.len(), 1);
        assert!(other.delete(left[0].id).await.unwrap());
    }
}
