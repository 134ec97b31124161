//! Snapshot stores behind the engine's `SnapshotStore` port.

mod local;

pub use local::LocalStore;
