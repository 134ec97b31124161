//! Subscriptions in the embedded store: two redb tables in the same file
//! as the snapshots, written in their own short transactions.

use async_trait::async_trait;
use incidentd_actors::ports::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use ulid::Ulid;

use super::json::{decode, encode};
use super::local::{blocking, unavailable, LocalStore};
use crate::subscriptions::{DeadLetter, Subscription, SubscriptionStore};

/// Subscription id -> subscription (JSON).
const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");
/// (subscription id, number growing per letter) -> dead letter (JSON).
const DEAD_LETTERS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("subscription_dead_letters");

/// Called when the store opens, so reads never meet a missing table.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SUBSCRIPTIONS)
        .map_err(|e| unavailable("create table", e))?;
    txn.open_table(DEAD_LETTERS)
        .map_err(|e| unavailable("create table", e))?;
    Ok(())
}

impl LocalStore {
    fn put_blocking(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let json = encode(subscription);
        let txn = self.write()?;
        {
            let mut table = txn
                .open_table(SUBSCRIPTIONS)
                .map_err(|e| unavailable("open table", e))?;
            let id = subscription.id.to_string();
            table
                .insert(id.as_str(), json.as_slice())
                .map_err(|e| unavailable("write", e))?;
        }
        txn.commit().map_err(|e| unavailable("commit", e))
    }

    fn list_blocking(&self) -> Result<Vec<Subscription>, StoreError> {
        let table = self.read_table(SUBSCRIPTIONS)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(|e| unavailable("read", e))? {
            let (_, json) = entry.map_err(|e| unavailable("read", e))?;
            all.extend(decode("subscription", json.value()));
        }
        Ok(all)
    }

    fn get_blocking(&self, id: Ulid) -> Result<Option<Subscription>, StoreError> {
        let table = self.read_table(SUBSCRIPTIONS)?;
        let stored = table
            .get(id.to_string().as_str())
            .map_err(|e| unavailable("read", e))?;
        Ok(stored.and_then(|json| decode("subscription", json.value())))
    }

    fn delete_blocking(&self, id: Ulid) -> Result<bool, StoreError> {
        let id = id.to_string();
        let txn = self.write()?;
        let existed = {
            let mut table = txn
                .open_table(SUBSCRIPTIONS)
                .map_err(|e| unavailable("open table", e))?;
            let existed = table
                .remove(id.as_str())
                .map_err(|e| unavailable("write", e))?
                .is_some();
            let mut letters = txn
                .open_table(DEAD_LETTERS)
                .map_err(|e| unavailable("open table", e))?;
            letters
                .retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)
                .map_err(|e| unavailable("write", e))?;
            existed
        };
        txn.commit().map_err(|e| unavailable("commit", e))?;
        Ok(existed)
    }

    fn add_dead_letter_blocking(
        &self,
        id: Ulid,
        letter: &DeadLetter,
        keep: usize,
    ) -> Result<(), StoreError> {
        let json = encode(letter);
        let id = id.to_string();
        let range = (id.as_str(), 0)..=(id.as_str(), u64::MAX);
        let txn = self.write()?;
        {
            let subscriptions = txn
                .open_table(SUBSCRIPTIONS)
                .map_err(|e| unavailable("open table", e))?;
            if subscriptions
                .get(id.as_str())
                .map_err(|e| unavailable("read", e))?
                .is_none()
            {
                return Ok(());
            }
            let mut letters = txn
                .open_table(DEAD_LETTERS)
                .map_err(|e| unavailable("open table", e))?;
            // The number after the subscription's last letter: letters keep
            // the order they came in.
            let last = letters
                .range(range.clone())
                .map_err(|e| unavailable("read", e))?
                .next_back()
                .transpose()
                .map_err(|e| unavailable("read", e))?
                .map(|(key, _)| key.value().1);
            let next = last.map_or(0, |n| n + 1);
            letters
                .insert((id.as_str(), next), json.as_slice())
                .map_err(|e| unavailable("write", e))?;
            // Numbers grow by one, so the newest `keep` are the last `keep`.
            let oldest_kept = (next + 1).saturating_sub(keep as u64);
            letters
                .retain_in(range, |(_, n), _| n >= oldest_kept)
                .map_err(|e| unavailable("write", e))?;
        }
        txn.commit().map_err(|e| unavailable("commit", e))
    }

    fn dead_letters_blocking(&self, id: Ulid) -> Result<Vec<DeadLetter>, StoreError> {
        let id = id.to_string();
        let table = self.read_table(DEAD_LETTERS)?;
        let mut letters = Vec::new();
        for entry in table
            .range((id.as_str(), 0)..=(id.as_str(), u64::MAX))
            .map_err(|e| unavailable("read", e))?
            .rev()
        {
            let (_, json) = entry.map_err(|e| unavailable("read", e))?;
            letters.extend(decode("dead letter", json.value()));
        }
        Ok(letters)
    }
}

#[async_trait]
impl SubscriptionStore for LocalStore {
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let subscription = subscription.clone();
        blocking(self, move |store| store.put_blocking(&subscription)).await
    }

    async fn list(&self) -> Result<Vec<Subscription>, StoreError> {
        blocking(self, LocalStore::list_blocking).await
    }

    async fn get(&self, id: Ulid) -> Result<Option<Subscription>, StoreError> {
        blocking(self, move |store| store.get_blocking(id)).await
    }

    async fn delete(&self, id: Ulid) -> Result<bool, StoreError> {
        blocking(self, move |store| store.delete_blocking(id)).await
    }

    async fn add_dead_letter(
        &self,
        id: Ulid,
        letter: &DeadLetter,
        keep: usize,
    ) -> Result<(), StoreError> {
        let letter = letter.clone();
        blocking(self, move |store| {
            store.add_dead_letter_blocking(id, &letter, keep)
        })
        .await
    }

    async fn dead_letters(&self, id: Ulid) -> Result<Vec<DeadLetter>, StoreError> {
        blocking(self, move |store| store.dead_letters_blocking(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::contract;

    #[tokio::test]
    async fn keeps_subscriptions_and_the_newest_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        contract::keeps_subscriptions_and_the_newest_dead_letters(&store).await;
        // And across a reopen (a restart).
        drop(store);
        let reopened = LocalStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list().await.unwrap().len(), 1);
    }
}
