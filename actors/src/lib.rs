//! The incidentd engine: alerts go in, incidents live as supervised actors,
//! ordered events come out. No network code lives here; the engine talks to
//! the world through the traits in [`ports`].
//!
//! Follow one alert: [`Engine::submit`] routes it ([`routing`]) and hands it
//! to its shard ([`shard`]), which passes it to the incident's actor
//! ([`incident`]); the change is published as an [`model::IncidentEvent`]
//! and stored with the shard's next flush before `submit` returns.

mod engine;
pub mod escalation;
mod incident;
pub mod model;
pub mod ports;
mod read_model;
mod restore;
pub mod routing;
mod settings;
mod shard;
mod telemetry;

pub use engine::{compile_rules, Engine, EngineError, Ports, RestoreReport, Stored, Submitted};
pub use incident::{
    decode_incident, encode_changes, encode_counts, encode_incident, CodecError, IncidentRules,
    SNAPSHOT_FORMAT_VERSION,
};
pub use read_model::ReadModel;
pub use restore::RejectedSnapshot;
pub use settings::{EngineSettings, PassivationSettings};
pub use shard::ShardLoad;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod test_support;
