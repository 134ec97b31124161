//! Shards: each owns the incidents of its group keys, their timers and their
//! snapshots, and supervises the incident actors.

mod batch;
mod context;
mod entry;
mod flush;
mod load;
mod passivation;
mod passive_alerts;
mod resend;
mod supervisor;
mod timers;

pub(crate) use batch::{BatchSplit, RoutedAlert, ShardAlerts};
pub(crate) use context::ShardContext;
pub(crate) use entry::GroupRef;
pub use load::ShardLoad;
pub(crate) use supervisor::{shard_of, ShardArgs, ShardMsg, ShardSupervisor};
