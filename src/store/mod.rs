//! Snapshot stores behind the engine's `SnapshotStore` port, which also
//! keep webhook subscriptions (`SubscriptionStore`).

mod local;
mod local_subscriptions;
mod redis;
mod redis_subscriptions;

pub use local::LocalStore;
pub use redis::RedisStore;
