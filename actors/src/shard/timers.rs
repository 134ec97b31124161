use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::model::{IncidentId, Timestamp};
use crate::ports::Clock;

use super::{IdMap, ShardMsg};

/// Every deadline of a shard's incidents, resident or passivated, ordered by
/// time. One task per shard sleeps until the earliest, instead of a timer
/// per incident.
#[derive(Default)]
pub(crate) struct TimerIndex {
    by_time: BTreeSet<(Timestamp, IncidentId)>,
    by_id: IdMap<IncidentId, (Timestamp, u64)>,
}

impl TimerIndex {
    /// Records an incident's next deadline (or that it has none).
    pub fn set(&mut self, id: IncidentId, deadline: Option<Timestamp>, generation: u64) {
        self.remove(id);
        if let Some(at) = deadline {
            self.by_time.insert((at, id));
            self.by_id.insert(id, (at, generation));
        }
    }

    /// Room for `additional` more incidents, before a restore fills it.
    pub fn reserve(&mut self, additional: usize) {
        self.by_id.reserve(additional);
    }

    pub fn remove(&mut self, id: IncidentId) {
        if let Some((at, _)) = self.by_id.remove(&id) {
            self.by_time.remove(&(at, id));
        }
    }

    pub fn deadline_of(&self, id: IncidentId) -> Option<Timestamp> {
        self.by_id.get(&id).map(|(at, _)| *at)
    }

    pub fn earliest(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Takes out every entry due at `now`, with the generation it was armed at.
    pub fn pop_due(&mut self, now: Timestamp) -> Vec<(IncidentId, u64)> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.by_time.first() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            if let Some((_, generation)) = self.by_id.remove(&id) {
                due.push((id, generation));
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Sleeps until the earliest deadline published on `earliest`, then tells
/// the shard; waits for the shard to publish again before the next round,
/// so it never sends a second `TimersDue` for the same deadline. Ends when
/// the shard drops the sender.
pub(crate) fn spawn_timer_task(
    mut earliest: watch::Receiver<Option<Timestamp>>,
    clock: Arc<dyn Clock>,
    shard: ActorRef<ShardMsg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let next = *earliest.borrow_and_update();
            let Some(at) = next else {
                if earliest.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let wait = Duration::from_millis(
                at.millis().saturating_sub(clock.now().millis()).max(0) as u64,
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    if shard.cast(ShardMsg::TimersDue).is_err() {
                        return;
                    }
                    if earliest.changed().await.is_err() {
                        return;
                    }
                }
                changed = earliest.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> IncidentId {
        IncidentId(ulid::Ulid::from_parts(n, 0))
    }

    #[test]
    fn pops_due_entries_in_time_order_and_replaces_on_set() {
        let mut index = TimerIndex::default();
        index.set(id(1), Some(Timestamp(300)), 1);
        index.set(id(2), Some(Timestamp(100)), 7);
        index.set(id(3), Some(Timestamp(200)), 1);
        index.set(id(1), Some(Timestamp(50)), 2);
        index.set(id(3), None, 2);
        assert_eq!(index.earliest(), Some(Timestamp(50)));
        assert_eq!(index.pop_due(Timestamp(150)), vec![(id(1), 2), (id(2), 7)]);
        assert_eq!(index.len(), 0);
        assert_eq!(index.earliest(), None);
    }
}
