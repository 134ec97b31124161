//! Snapshot stores behind the engine's `SnapshotStore` port.

mod local;
mod redis;

pub use local::LocalStore;
pub use redis::RedisStore;
