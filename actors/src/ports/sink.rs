use async_trait::async_trait;
use thiserror::Error;

use crate::model::IncidentEvent;

#[derive(Debug, Error)]
#[error("event sink {sink}: {message}")]
pub struct SinkError {
    pub sink: String,
    pub message: String,
}

/// Where incident events go.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Takes events of one incident in `seq` order. Must not block: a sink
    /// that talks to a broker queues here and delivers in `flush`.
    fn publish(&self, events: &[IncidentEvent]);

    /// Waits until everything published so far is delivered. A shard calls
    /// it before storing the snapshot that records those events, so a crash
    /// may repeat an event but never skip one.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Why the engine should take no new input now: the sink holds as many
    /// undelivered events as it may. Events are never dropped, so a sink
    /// keeps its bound by having the engine refuse new changes (callers
    /// retry) until it caught up. None while there is room.
    fn backlog_full(&self) -> Option<String> {
        None
    }
}
