use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use incidentd_actors::model::IncidentEvent;
use incidentd_actors::ports::EventSink;
use tokio::sync::broadcast;

use super::SharedEvent;

/// Something that must see every event, synchronously and without blocking
/// (it queues what it needs to do).
pub trait EventListener: Send + Sync + 'static {
    fn on_event(&self, event: &Arc<SharedEvent>);
}

/// Where a reconnecting client picks up.
pub enum Resume {
    /// Events after the one the client saw last, then live ones.
    From(Vec<Arc<SharedEvent>>),
    /// The client's last event is no longer in the buffer: it may have missed some.
    Lost,
}

struct Inner {
    replay: VecDeque<Arc<SharedEvent>>,
    listeners: Vec<Arc<dyn EventListener>>,
}

pub struct EventBus {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<SharedEvent>>,
    replay_capacity: usize,
}

impl EventBus {
    /// `replay_capacity` events are kept for resuming clients; a subscriber
    /// that falls that far behind is told it lagged.
    pub fn new(replay_capacity: usize) -> EventBus {
        let (live, _) = broadcast::channel(replay_capacity.max(16));
        EventBus {
            inner: Mutex::new(Inner {
                replay: VecDeque::with_capacity(replay_capacity.min(1 << 16)),
                listeners: Vec::new(),
            }),
            live,
            replay_capacity: replay_capacity.max(1),
        }
    }

    pub fn add_listener(&self, listener: Arc<dyn EventListener>) {
        self.inner
            .lock()
            .expect("bus lock")
            .listeners
            .push(listener);
    }

    /// Live events from now on, plus where to resume from `last_event_id`.
    /// Taken under the same lock as `publish`, so nothing falls between the
    /// replayed and the live events.
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> (broadcast::Receiver<Arc<SharedEvent>>, Resume) {
        let inner = self.inner.lock().expect("bus lock");
        let receiver = self.live.subscribe();
        let resume = match last_event_id {
            None => Resume::From(Vec::new()),
            Some(id) => match inner.replay.iter().position(|e| e.id == id) {
                Some(at) => Resume::From(inner.replay.iter().skip(at + 1).cloned().collect()),
                None => Resume::Lost,
            },
        };
        (receiver, resume)
    }

    /// Takes events another output may share too (see [`SharedEvent`]).
    pub fn publish_shared(&self, events: &[Arc<SharedEvent>]) {
        let mut inner = self.inner.lock().expect("bus lock");
        for event in events {
            let event = event.clone();
            if inner.replay.len() == self.replay_capacity {
                inner.replay.pop_front();
            }
            inner.replay.push_back(event.clone());
            for listener in &inner.listeners {
                listener.on_event(&event);
            }
            // No receiver is not an error: nobody is watching right now.
            let _ = self.live.send(event);
        }
    }
}

#[async_trait]
impl EventSink for EventBus {
    fn publish(&self, events: &[IncidentEvent]) {
        self.publish_shared(&SharedEvent::share_all(events));
    }
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::{Change, IncidentId};

    use super::*;
    use crate::test_support::{event as test_event, summary};

    fn event(n: u64) -> IncidentEvent {
        let summary = summary(IncidentId(ulid::Ulid::from_parts(1, 1)));
        test_event(
            summary,
            n,
            Change::NoteAdded {
                text: n.to_string(),
            },
        )
    }

    #[tokio::test]
    async fn resumes_after_last_event_or_says_it_was_lost() {
        let bus = EventBus::new(3);
        bus.publish(&[event(1), event(2), event(3), event(4)]);
        let first_kept = IncidentEvent::event_id(event(2).incident_id, 2);
        let (_, resume) = bus.subscribe(Some(&first_kept));
        let Resume::From(replayed) = resume else {
            panic!("event 2 is still buffered")
        };
        assert_eq!(
            replayed.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(matches!(bus.subscribe(Some(&event(1).id)).1, Resume::Lost));
        let (mut live, _) = bus.subscribe(None);
        bus.publish(&[event(5)]);
        assert_eq!(live.recv().await.unwrap().seq, 5);
    }
}
