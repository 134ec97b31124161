//! Shards: each owns the incidents of its group keys, their timers and their
//! snapshots, and supervises the incident actors.

mod batch;
mod context;
mod entry;
mod flush;
mod load;
mod passivation;
mod passive_input;
mod resend;
mod supervisor;
mod timers;

/// A map keyed by ids the engine makes (incident ids, actor ids), never by
/// what a sender chooses: hashed with foldhash, randomly seeded per map,
/// which is several times cheaper than std's SipHash on these small keys.
/// Maps keyed by group keys, which senders choose, keep SipHash.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) use batch::{BatchSplit, RoutedAlert, ShardAlerts};
pub(crate) use context::ShardContext;
pub(crate) use entry::{group_of, GroupRef};
pub use load::ShardLoad;
pub(crate) use supervisor::{shard_of, ShardArgs, ShardMsg, ShardSupervisor};
