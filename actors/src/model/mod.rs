//! The engine's data: what comes in (alerts, commands), what lives (incidents)
//! and what goes out (events).

mod alert;
mod command;
mod event;
mod incident;
mod labels;
mod stable_hash;
mod time;

pub use alert::{
    fingerprint_of, Alert, AlertStatus, FieldError, Severity, MAX_FINGERPRINT_LEN, MAX_LABELS,
    MAX_SUMMARY_LEN,
};
pub use command::{Command, CommandError, NewIncident};
pub use event::{Change, EventKind, IncidentEvent};
pub(crate) use incident::OpeningRecord;
pub use incident::{
    AlertState, EscalationPosition, FiredStep, Incident, IncidentId, IncidentStatus,
    IncidentSummary, TimelineEntry,
};
pub use labels::Labels;
pub(crate) use stable_hash::StableHash;
pub use time::Timestamp;

/// Text that alerts carry many of and that is mostly short (label names
/// and values, fingerprints, summaries): up to 24 bytes are kept inline, so
/// most cost no allocation to make, clone or drop.
pub use compact_str::CompactString;
