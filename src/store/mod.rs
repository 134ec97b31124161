//! Snapshot stores behind the engine's `SnapshotStore` port, which also
//! keep webhook subscriptions (`SubscriptionStore`) and PagerDuty trigger
//! keys (`TriggerKeyStore`).

mod json;
mod local;
mod local_log;
mod local_log_deleter;
mod local_log_record;
mod local_migration;
mod local_pagerduty_keys;
mod local_subscriptions;
mod redis;
mod redis_pagerduty_keys;
mod redis_subscriptions;
mod redis_summaries;

pub use local::LocalStore;
pub use redis::RedisStore;
