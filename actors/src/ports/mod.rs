//! The engine's only doors to the world: where snapshots are kept, where
//! events go, and what time it is. The service plugs real stores and sinks
//! in; tests plug the in-memory ones from [`memory`].

mod clock;
pub mod memory;
mod sink;
mod store;
pub mod store_check;

pub use clock::{Clock, TokioClock};
pub use sink::{EventSink, SinkError};
pub use store::{
    AlertRecord, Progress, ShardSnapshot, SnapshotBatch, SnapshotStore, SnapshotWrite,
    SourcePosition, StoreError,
};
