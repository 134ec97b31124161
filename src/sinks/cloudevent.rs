//! The wire form of incident events on broker topics: a CloudEvents 1.0
//! JSON envelope. `id` is the event id (incident id + seq), the same on
//! every topic and on SSE, so consumers drop repeats by `id`; `subject` is
//! the incident id; `type` is `incidentd.incident.<kind>.v1`.

use incidentd_actors::model::{Change, IncidentEvent, IncidentSummary, Timestamp};
use serde::Serialize;

/// Where the events come from, as CloudEvents `source`.
pub const SOURCE: &str = "/incidentd";

#[derive(Serialize)]
pub struct CloudEvent<'a> {
    pub specversion: &'static str,
    pub id: &'a str,
    pub source: &'static str,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    pub time: Timestamp,
    pub datacontenttype: &'static str,
    pub data: EventData<'a>,
}

/// What changed, and the incident after the change.
#[derive(Serialize)]
pub struct EventData<'a> {
    pub tenant: &'a str,
    pub group_key: &'a str,
    /// Position in the incident's event sequence: 1, 2, 3, ... with no gap.
    pub seq: u64,
    pub actor: &'a str,
    pub change: &'a Change,
    pub incident: &'a IncidentSummary,
}

impl<'a> CloudEvent<'a> {
    pub fn of(event: &'a IncidentEvent) -> CloudEvent<'a> {
        CloudEvent {
            specversion: "1.0",
            id: &event.id,
            source: SOURCE,
            event_type: format!("incidentd.incident.{}.v1", event.kind.as_str()),
            subject: event.incident_id.to_string(),
            time: event.time,
            datacontenttype: "application/json",
            data: EventData {
                tenant: &event.tenant,
                group_key: &event.group_key,
                seq: event.seq,
                actor: &event.actor,
                change: &event.change,
                incident: &event.incident,
            },
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serializes")
    }
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::IncidentId;
    use serde_json::Value;

    use super::*;
    use crate::test_support::{event, summary};

    #[test]
    fn envelope_carries_the_event_id_type_subject_and_seq() {
        let id = IncidentId(ulid::Ulid::from_parts(7, 7));
        let event = event(summary(id), 3, Change::Acknowledged);
        let json: Value = serde_json::from_slice(&CloudEvent::of(&event).to_json()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], event.id.as_str());
        assert_eq!(json["type"], "incidentd.incident.acknowledged.v1");
        assert_eq!(json["subject"], id.to_string());
        assert_eq!(json["data"]["seq"], 3);
        assert_eq!(json["data"]["incident"]["id"], id.to_string());
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
    }
}
