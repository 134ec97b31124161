//! Alert ingest: one decoder per wire format, turning request bodies and
//! topic messages into the engine's `Alert` with per-item errors, and the
//! HTTP endpoints.

mod alertmanager_v2;
mod alertmanager_webhook;
mod decoded;
mod fields;
pub mod http;
mod native;
mod pagerduty;
pub mod pagerduty_keys;
pub mod pulsar;
mod topic_message;

pub use alertmanager_v2::decode_alertmanager_v2;
pub use alertmanager_webhook::decode_alertmanager_webhook;
pub use decoded::{BodyError, Decoded, Rejected};
pub use http::{router, FieldErrorBody, RejectedAlert, RejectedBatch};
pub use native::{decode_native_json, decode_native_ndjson};
pub use pagerduty::{decode_pagerduty, PagerDutyError, PagerDutyEvent};
pub use pagerduty_keys::{PagerDutyAction, PagerDutyKeys, TriggerKey, UnknownDedupKey};
pub use topic_message::{decode_source, SourceFormat, SourceInput};
