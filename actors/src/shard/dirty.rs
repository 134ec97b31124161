use ractor::ActorId;
use tokio::sync::oneshot;

use crate::incident::SnapshotReply;

/// What the next commit needs to store a changed incident. An incident
/// actor answers every batch of alerts with its snapshot after them, so a
/// commit of an incident that only took alerts has its snapshots already and
/// sends its actor nothing more: one message per batch instead of two.
#[derive(Default)]
pub(crate) struct Dirty {
    /// The snapshots sent after batches of alerts, oldest first, with the
    /// actor that sent each; each continues the one before it.
    replies: Vec<(ActorId, oneshot::Receiver<SnapshotReply>)>,
    /// Input other than alerts (a command, a timer) reached the incident
    /// after its last snapshot: the commit must ask for a newer one.
    stale: bool,
}

impl Dirty {
    /// A snapshot on its way after a batch of alerts: it holds every input
    /// sent to the actor before it.
    pub fn expect(&mut self, actor: ActorId, reply: oneshot::Receiver<SnapshotReply>) {
        self.replies.push((actor, reply));
        self.stale = false;
    }

    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// The snapshots of `actor` to store, in order, and whether the commit
    /// must ask it for a newer one after them (input other than alerts came
    /// last, or there is none). Snapshots of an earlier actor of the
    /// incident (before a passivation or restart) are dropped: the current
    /// one started from a state that holds them, and writes whole first.
    pub fn replies_of(self, actor: ActorId) -> (Vec<oneshot::Receiver<SnapshotReply>>, bool) {
        let replies: Vec<_> = self
            .replies
            .into_iter()
            .filter(|(from, _)| *from == actor)
            .map(|(_, reply)| reply)
            .collect();
        let ask = self.stale || replies.is_empty();
        (replies, ask)
    }
}
