//! Event-topic checks shared by the Kafka and Pulsar tests: drive some
//! incident changes, then check what a topic carried, per incident.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::{json, Value};

use super::load::native_alert;
use super::schemas::EventSchemas;
use super::Service;

/// Opens `incidents` incidents and changes each of them about 20 times, in
/// most of the ways an incident changes: alerts joining, acknowledge and
/// its reversal, assignment, notes, severity and title, resolve and reopen.
/// Returns every incident's last seq (its number of events).
pub async fn incidents_with_many_changes(
    service: &Service,
    incidents: usize,
) -> BTreeMap<String, u64> {
    for instance in 0..8 {
        let alerts: Vec<Value> = (0..incidents)
            .map(|i| native_alert(&format!("E{i}"), instance, "warning"))
            .collect();
        let response = service.post_json("/api/v1/alerts", &json!(alerts)).await;
        assert_eq!(response.status(), 200, "alerts of instance {instance}");
    }
    let opened = service.all_incidents().await;
    assert_eq!(opened.len(), incidents);
    let commands: [(&str, Value); 12] = [
        ("acknowledge", json!({})),
        ("notes", json!({"text": "looking"})),
        ("assign", json!({"assignee": "bob"})),
        ("", json!({"severity": "critical"})),
        ("unacknowledge", json!({})),
        ("notes", json!({"text": "still there"})),
        ("", json!({"title": "renamed"})),
        ("resolve", json!({})),
        ("reopen", json!({})),
        ("assign", json!({"assignee": null})),
        ("notes", json!({"text": "cause found"})),
        ("notes", json!({"text": "done"})),
    ];
    let changes = opened.iter().map(|incident| {
        let base = format!("/api/v1/incidents/{}", incident["id"].as_str().unwrap());
        let commands = &commands;
        async move {
            // One incident's commands in order; incidents side by side.
            for (action, body) in commands {
                let response = if action.is_empty() {
                    service.patch_json(&base, body).await
                } else {
                    service.post_json(&format!("{base}/{action}"), body).await
                };
                assert_eq!(response.status(), 200, "{action} {body} on {base}");
            }
        }
    });
    futures::stream::iter(changes)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
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
