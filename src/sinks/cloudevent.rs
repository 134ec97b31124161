//! The wire form of incident events on broker topics: a CloudEvents 1.0
//! JSON envelope. `id` is the event id (incident id + seq), the same on
//! every topic and on SSE, so consumers drop repeats by `id`; `subject` is
//! the incident id; `type` is `incidentd.incident.<kind>.v1`.

use incidentd_actors::model::{Change, EventKind, IncidentEvent, IncidentSummary, Timestamp};
use serde::Serialize;

/// Where the events come from, as CloudEvents `source`.
pub const SOURCE: &str = "/incidentd";

/// How every event type starts.
pub const EVENT_TYPE_PREFIX: &str = "incidentd.incident.";

/// The CloudEvents `type` of a kind, e.g. `incidentd.incident.created.v1`;
/// also the name (without `.json`) of its schema in `schemas/`.
pub fn event_type(kind: EventKind) -> String {
    format!("{EVENT_TYPE_PREFIX}{}.v1", kind.as_str())
}

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
            event_type: event_type(event.kind),
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
    use incidentd_actors::model::Labels;
    use std::sync::Arc;

    use incidentd_actors::model::{IncidentId, IncidentStatus, Severity};
    use serde_json::{json, Value};

    use super::*;
    use crate::test_support::event_schemas::EventSchemas;
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

    /// A change of `kind` with every field set.
    fn change_of(kind: EventKind) -> Change {
        match kind {
            EventKind::Created => Change::Created {
                fingerprint: Some("f1".into()),
            },
            EventKind::AlertAdded => Change::AlertAdded {
                fingerprint: "f2".into(),
                severity: Severity::Error,
                summary: "disk full".into(),
                refire: false,
            },
            EventKind::AlertResolved => Change::AlertResolved {
                fingerprint: "f2".into(),
            },
            EventKind::Acknowledged => Change::Acknowledged,
            EventKind::Unacknowledged => Change::Unacknowledged,
            EventKind::AckTimedOut => Change::AckTimedOut,
            EventKind::Escalated => Change::Escalated {
                policy: "page".into(),
                step: 0,
                loop_index: 1,
                targets: vec!["user:alice".into()],
                channels: vec!["log".into()],
                idempotency_key: "k".into(),
            },
            EventKind::Resolved => Change::Resolved { automatic: true },
            EventKind::Reopened => Change::Reopened { reopen_count: 1 },
            EventKind::Assigned => Change::Assigned { assignee: None },
            EventKind::NoteAdded => Change::NoteAdded { text: "hi".into() },
            EventKind::SeverityChanged => Change::SeverityChanged {
                from: Severity::Info,
                to: Severity::Critical,
            },
            EventKind::TitleChanged => Change::TitleChanged {
                from: "a".into(),
                to: "b".into(),
            },
            EventKind::Snoozed => Change::Snoozed {
                until: Timestamp(3_600_000),
            },
            EventKind::SnoozeExpired => Change::SnoozeExpired,
            EventKind::Archived => Change::Archived,
        }
    }

    /// The wire form of a `kind` event, as JSON.
    fn wire_event(kind: EventKind) -> Value {
        let id = IncidentId(ulid::Ulid::from_parts(7, 7));
        let incident = IncidentSummary {
            status: IncidentStatus::Acknowledged,
            service: Some("db".into()),
            labels: Arc::new(Labels::from([("alertname".into(), "DiskFull".into())])),
            acknowledged_at: Some(Timestamp(1_500)),
            ..summary(id)
        };
        let event = event(incident, 2, change_of(kind));
        serde_json::from_slice(&CloudEvent::of(&event).to_json()).unwrap()
    }

    #[test]
    fn every_kind_of_event_matches_its_schema() {
        let schemas = EventSchemas::load();
        for kind in EventKind::ALL {
            let json = wire_event(kind);
            if let Err(e) = schemas.validate(&json) {
                panic!("{kind:?} does not match its schema: {e}\n{json:#}");
            }
        }
    }

    /// What a mutation breaks, and how.
    type Mutation = (&'static str, fn(&mut Value));

    #[test]
    fn an_event_unlike_its_schema_is_refused() {
        let schemas = EventSchemas::load();
        let mutations: [Mutation; 6] = [
            ("missing title", |e| {
                e["data"]["incident"]
                    .as_object_mut()
                    .unwrap()
                    .remove("title");
            }),
            ("unknown severity", |e| {
                e["data"]["incident"]["severity"] = json!("urgent");
            }),
            ("extra field in change", |e| {
                e["data"]["change"]["extra"] = json!(1);
            }),
            ("extra field in data", |e| e["data"]["extra"] = json!(1)),
            ("change of another kind", |e| {
                e["data"]["change"]["kind"] = json!("resolved");
            }),
            ("time without milliseconds", |e| {
                e["time"] = json!("2026-11-27T10:00:00Z");
            }),
        ];
        for (what, mutate) in mutations {
            let mut json = wire_event(EventKind::SeverityChanged);
            mutate(&mut json);
            assert!(schemas.validate(&json).is_err(), "{what} was accepted");
        }
        let mut unknown = wire_event(EventKind::Created);
        unknown["type"] = json!("incidentd.incident.exploded.v1");
        let error = schemas.validate(&unknown).unwrap_err();
        assert!(error.contains("no schema"), "{error}");
    }
}
