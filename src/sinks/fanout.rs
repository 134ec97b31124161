//! The engine's one event sink: the in-process bus (SSE, notifier) first,
//! then every configured broker topic. A flush waits for all of them.

use std::sync::Arc;

use async_trait::async_trait;
use incidentd_actors::model::IncidentEvent;
use incidentd_actors::ports::{EventSink, SinkError};

use super::Outbound;
use crate::bus::{EventBus, SharedEvent};

pub struct Fanout {
    pub bus: Arc<EventBus>,
    pub topics: Vec<Arc<Outbound>>,
}

#[async_trait]
impl EventSink for Fanout {
    fn publish(&self, events: &[IncidentEvent]) {
        // Shared, so each encoding is made once for the bus's receivers and
        // every topic together.
        let events = SharedEvent::share_all(events);
        self.bus.publish_shared(&events);
        for topic in &self.topics {
            topic.publish_shared(&events);
        }
    }

    fn backlog_full(&self) -> Option<String> {
        self.topics.iter().find_map(|topic| topic.backlog_full())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        for topic in &self.topics {
            topic.flush().await?;
        }
        Ok(())
    }
}
