//! One incident: its pure state machine (alerts, commands, timers) and the
//! actor that owns it while it is resident.

mod actor;
mod alerts;
mod codec;
mod commands;
mod escalation;
mod intake;
mod open;
mod record;
mod record_runs;
mod rules;
mod snapshot_writer;
mod timers;

pub(crate) use actor::{IncidentActor, IncidentArgs, IncidentMsg, SnapshotReply, SnapshotRequest};
pub use codec::{
    decode_incident, encode_changes, encode_counts, encode_incident, CodecError,
    SNAPSHOT_FORMAT_VERSION,
};
pub(crate) use intake::take_alerts;
pub(crate) use open::manual_group_key;
pub(crate) use record_runs::RecordRuns;
pub use rules::IncidentRules;
pub(crate) use snapshot_writer::SnapshotWriter;

#[cfg(test)]
mod tests;
