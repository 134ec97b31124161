//! Requests waiting for their outcome on this replica: a REST command sent
//! through the keyed topic is answered with its result when the shard that
//! applies it runs here.

use std::sync::Arc;

use dashmap::DashMap;
use incidentd_actors::model::{CommandError, IncidentSummary};
use tokio::sync::oneshot;
use ulid::Ulid;

pub type Outcome = Result<Arc<IncidentSummary>, CommandError>;

#[derive(Default)]
pub struct PendingReplies {
    waiting: DashMap<Ulid, oneshot::Sender<Outcome>>,
}

impl PendingReplies {
    pub fn register(&self, request: Ulid) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(request, tx);
        rx
    }

    /// Forgets a request whose caller stopped waiting.
    pub fn forget(&self, request: &Ulid) {
        self.waiting.remove(request);
    }

    /// Hands the outcome to the caller, if it waits here.
    pub fn complete(&self, request: &Ulid, outcome: Outcome) {
        if let Some((_, tx)) = self.waiting.remove(request) {
            let _ = tx.send(outcome);
        }
    }
}
