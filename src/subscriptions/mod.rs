//! Webhook subscriptions (`/api/v1/subscriptions`): incident events POSTed
//! as CloudEvents to URLs registered at run time, each with its own filter
//! and signing secret.
//!
//! Delivery is at least once and in order per subscription. Each replica
//! delivers the events of the shards it owns, for every subscription (it
//! reloads them from the store every `subscriptions.refresh_interval`), so
//! across the cluster each event goes out once per subscription, and again
//! only when a shard moves or a receiver's answer is lost. The `id` of an
//! event (also `ce-id` and `Idempotency-Key`) is the same as on SSE and the
//! event topics, so receivers drop repeats by it.

mod config;
mod dead_letter;
mod registry;
mod stats;
mod store;
mod subscription;
mod worker;

pub use config::SubscriptionsConfig;
pub use dead_letter::DeadLetter;
pub use registry::{Deliveries, SubscriptionError, Subscriptions};
pub use stats::DeliveryCounts;
pub use store::SubscriptionStore;
#[cfg(test)]
pub(crate) use store::{contract, memory};
pub use subscription::{NewSubscription, Subscription, SubscriptionView};
