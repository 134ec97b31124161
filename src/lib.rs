//! The incidentd service: configuration, HTTP ingest and API, the event
//! bus, the embedded snapshot store and the notifier around the engine in
//! `incidentd_actors`.

pub mod api;
pub mod bus;
pub mod config;
pub mod ingest;
pub mod intake;
pub mod kafka;
pub mod notify;
pub mod server;
pub mod sinks;
pub mod state;
pub mod store;
pub mod subscriptions;
mod tagged_bincode;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod webhook;
