use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use incidentd_actors::model::IncidentEvent;

use crate::sinks::CloudEvent;

/// One incident event as every output shares it, with its encodings made at
/// most once, by the first output that needs each: however many SSE
/// clients, webhook subscriptions and broker topics send an event, it is
/// serialized once per form, not once per receiver.
pub struct SharedEvent {
    event: IncidentEvent,
    /// The event's own JSON: SSE `data`.
    json: OnceLock<String>,
    /// The CloudEvents envelope: broker topics and webhook subscriptions.
    cloudevent: OnceLock<Arc<[u8]>>,
}

impl SharedEvent {
    pub fn new(event: IncidentEvent) -> SharedEvent {
        SharedEvent {
            event,
            json: OnceLock::new(),
            cloudevent: OnceLock::new(),
        }
    }

    /// Shares each of `events`, in order.
    pub fn share_all(events: &[IncidentEvent]) -> Vec<Arc<SharedEvent>> {
        events
            .iter()
            .map(|event| Arc::new(SharedEvent::new(event.clone())))
            .collect()
    }

    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).expect("an event always serializes"))
    }

    pub fn cloudevent(&self) -> &Arc<[u8]> {
        self.cloudevent
            .get_or_init(|| CloudEvent::of(&self.event).to_json().into())
    }
}

impl Deref for SharedEvent {
    type Target = IncidentEvent;

    fn deref(&self) -> &IncidentEvent {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::{Change, IncidentId};

    use super::*;
    use crate::test_support::{event, summary};

    #[test]
    fn each_form_is_the_event_s_encoding_and_made_once() {
        let note = Change::NoteAdded { text: "n".into() };
        let shared = SharedEvent::new(event(
            summary(IncidentId(ulid::Ulid::from_parts(1, 1))),
            2,
            note,
        ));
        assert_eq!(shared.json(), serde_json::to_string(&*shared).unwrap());
        assert_eq!(
            &shared.cloudevent()[..],
            &CloudEvent::of(&shared).to_json()[..]
        );
        assert!(std::ptr::eq(shared.json(), shared.json()));
        assert!(Arc::ptr_eq(shared.cloudevent(), shared.cloudevent()));
    }
}
