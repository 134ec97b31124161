//! Event-topic checks shared by the Kafka and Pulsar tests: drive some
//! incident changes, then check what a topic carried, per incident.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::schemas::EventSchemas;
use super::Service;

/// Opens `incidents` incidents (one alert each) and adds `notes` notes to
/// each; returns every incident's last seq (its number of events).
pub async fn incidents_with_notes(
    service: &Service,
    incidents: usize,
    notes: usize,
) -> BTreeMap<String, u64> {
    let alerts: Vec<Value> = (0..incidents)
        .map(|i| json!({"status": "firing", "labels": {"alertname": format!("E{i}")}}))
        .collect();
    let response = service.post_json("/api/v1/alerts", &json!(alerts)).await;
    assert_eq!(response.status(), 200);
    let opened = service.all_incidents().await;
    assert_eq!(opened.len(), incidents);
    for note in 0..notes {
        let adds = opened.iter().map(|incident| {
            let path = format!(
                "/api/v1/incidents/{}/notes",
                incident["id"].as_str().unwrap()
            );
            async move {
                let body = json!({"text": format!("note {note}"), "actor": "bob"});
                let response = service.post_json(&path, &body).await;
                assert_eq!(response.status(), 200);
            }
        });
        futures::future::join_all(adds).await;
    }
    last_seqs(service).await
}

/// Every incident's last seq (its number of events), by incident id.
pub async fn last_seqs(service: &Service) -> BTreeMap<String, u64> {
    service
        .all_incidents()
        .await
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A record's payload as JSON, after checking it against the schema of
/// its event type (`schemas/`).
fn valid_event(schemas: &EventSchemas, payload: &[u8]) -> Value {
    let event: Value = serde_json::from_slice(payload).expect("a JSON event");
    if let Err(e) = schemas.validate(&event) {
        panic!("an event unlike its schema: {e}\n{event:#}");
    }
    event
}

/// Follows what one topic carried: every record must be a CloudEvent of
/// an incident that matches its schema, keyed by the incident, with seq
/// one above the incident's previous.
pub struct SeqOrder {
    pub seen: BTreeMap<String, u64>,
    schemas: EventSchemas,
}

/// Starts with no incident seen, and the schemas loaded.
impl Default for SeqOrder {
    fn default() -> SeqOrder {
        SeqOrder {
            seen: BTreeMap::new(),
            schemas: EventSchemas::load(),
        }
    }
}

impl SeqOrder {
    /// Checks one record (its key and JSON payload).
    pub fn check(&mut self, key: Option<&str>, payload: &[u8]) {
        let event = valid_event(&self.schemas, payload);
        let subject = event["subject"].as_str().expect("subject").to_string();
        assert_eq!(key, Some(subject.as_str()), "keyed by incident id");
        let seq = event["data"]["seq"].as_u64().expect("seq");
        assert_eq!(event["id"], format!("{subject}-{seq}"));
        let previous = self.seen.insert(subject.clone(), seq).unwrap_or(0);
        assert_eq!(
            seq,
            previous + 1,
            "incident {subject}: seq {seq} after {previous}"
        );
    }
}

/// Follows a topic across a crash: an incident's events may repeat (same
/// seq, sent again after the restart) but none may be skipped, and each
/// must match its schema.
pub struct NoGap {
    /// Highest seq seen per incident.
    pub highest: BTreeMap<String, u64>,
    pub repeats: usize,
    schemas: EventSchemas,
}

/// Starts with no incident seen, and the schemas loaded.
impl Default for NoGap {
    fn default() -> NoGap {
        NoGap {
            highest: BTreeMap::new(),
            repeats: 0,
            schemas: EventSchemas::load(),
        }
    }
}

impl NoGap {
    pub fn check(&mut self, payload: &[u8]) {
        let event = valid_event(&self.schemas, payload);
        let subject = event["subject"].as_str().expect("subject").to_string();
        let seq = event["data"]["seq"].as_u64().expect("seq");
        let highest = self.highest.entry(subject.clone()).or_insert(0);
        assert!(
            seq <= *highest + 1,
            "incident {subject}: seq {seq} after {highest}: a gap"
        );
        if seq <= *highest {
            self.repeats += 1;
        }
        *highest = (*highest).max(seq);
    }
}
