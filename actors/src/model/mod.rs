//! The engine's data: what comes in (alerts, commands), what lives (incidents)
//! and what goes out (events).

mod alert;
mod command;
mod event;
mod incident;
mod time;

pub use alert::{
    fingerprint_of, Alert, AlertStatus, FieldError, Severity, MAX_FINGERPRINT_LEN, MAX_LABELS,
    MAX_SUMMARY_LEN,
};
pub use command::{Command, CommandError, NewIncident};
pub use event::{Change, EventKind, IncidentEvent};
pub use incident::{
    AlertState, EscalationPosition, FiredStep, Incident, IncidentId, IncidentStatus,
    IncidentSummary, TimelineEntry,
};
pub use time::Timestamp;
