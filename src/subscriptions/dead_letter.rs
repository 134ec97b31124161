use incidentd_actors::model::{EventKind, IncidentEvent, IncidentId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::webhook::Failure;

/// An event a subscription gave up on: after its last attempt, when the
/// receiver refused it, or at once when the subscription's queue was full
/// (`attempts` = 0, `last_error` = "queue full").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The CloudEvents `id`, the same as on SSE and the event topics.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub incident_id: IncidentId,
    pub attempts: u32,
    pub last_error: String,
    /// The receiver's last HTTP status, when it answered at all.
    pub last_status: Option<u16>,
    pub failed_at: Timestamp,
}

impl DeadLetter {
    pub fn new(event: &IncidentEvent, attempts: u32, failure: Failure) -> DeadLetter {
        DeadLetter {
            event_id: event.id.clone(),
            kind: event.kind,
            incident_id: event.incident_id,
            attempts,
            last_error: failure.error,
            last_status: failure.status,
            failed_at: Timestamp::from_datetime(chrono::Utc::now()),
        }
    }

    /// Never attempted: the subscription's queue had no room.
    pub fn queue_full(event: &IncidentEvent) -> DeadLetter {
        let failure = Failure {
            error: "queue full".into(),
            status: None,
        };
        DeadLetter::new(event, 0, failure)
    }
}
