use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::incident::IncidentMsg;
use crate::model::{IncidentId, Timestamp};
use crate::telemetry;

use super::entry::Entry;
use super::supervisor::{ShardMsg, ShardState};

/// What started a sweep.
#[derive(Clone, Copy)]
pub(super) enum SweepTrigger {
    /// The periodic one, every `check_interval`.
    Timer,
    /// More actors running than `max_resident` (`check_crowding`).
    Crowded,
}

impl ShardState {
    pub(super) fn schedule_sweep(&mut self, myself: &ActorRef<ShardMsg>) {
        let settings = &self.context.settings.passivation;
        if settings.enabled && !self.sweep_scheduled {
            self.sweep_scheduled = true;
            drop(myself.send_after(settings.check_interval, || ShardMsg::Sweep));
        }
    }

    /// Queues a `Crowded` sweep once more actors run than `max_resident`.
    /// After one, the next waits until a tenth of the cap more than it left
    /// running for a deadline soon have started: when most running
    /// incidents have a deadline soon, a sweep frees few, and one at every
    /// start would scan the shard each time. Those it left only because
    /// their input was not stored yet do not count: any commit, also the
    /// one that ends a store outage, lets them stop, and it checks here.
    pub(super) fn check_crowding(&mut self, myself: &ActorRef<ShardMsg>) {
        let settings = &self.context.settings.passivation;
        let limit = settings
            .max_resident
            .max(self.resident_after_sweep + settings.max_resident / 10);
        if settings.enabled && !self.crowded_sweep_queued && self.actors.len() > limit {
            self.crowded_sweep_queued = true;
            let _ = myself.cast(ShardMsg::Crowded);
        }
    }

    /// Stops the actors of quiet incidents (no input for `idle_after`, no
    /// deadline within `timer_horizon`) and keeps their encoded state; with
    /// more actors running than `max_resident`, also the least recently
    /// used others without a deadline soon, down to nine tenths of the cap.
    /// Waiting for the replies here is deliberate: while the shard waits it
    /// sends those actors nothing new, so no input can be lost between the
    /// actor's last message and its stop.
    ///
    /// Over the cap, an incident with input not yet in a commit (dirty) is
    /// left running: it may hand alerts back to the shard, and only its
    /// snapshot reply tells that commit to keep its callers waiting for the
    /// incident the alerts open. Input in the commit under
    /// way is safe: its snapshot request is ahead of `Passivate` in the
    /// actor's mailbox.
    pub(super) async fn sweep(&mut self, myself: &ActorRef<ShardMsg>, trigger: SweepTrigger) {
        match trigger {
            SweepTrigger::Timer => self.sweep_scheduled = false,
            SweepTrigger::Crowded => self.crowded_sweep_queued = false,
        }
        let settings = self.context.settings.passivation.clone();
        let now = self.context.clock.now();
        let idle_since = Timestamp(now.millis() - settings.idle_after.as_millis() as i64);
        let horizon = now.plus(settings.timer_horizon);
        // The running actors (not every live incident: a shard may hold a
        // million passivated ones) that may stop.
        let mut unstored = 0;
        let mut quiet: Vec<(Timestamp, IncidentId, &ActorRef<IncidentMsg>)> = self
            .actors
            .iter()
            .filter_map(|(actor_id, id)| {
                let Some(Entry::Active {
                    actor, last_input, ..
                }) = self.incidents.get(id)
                else {
                    return None;
                };
                if actor.get_id() != *actor_id {
                    return None;
                }
                let timer_soon = self.timers.deadline_of(*id).is_some_and(|at| at <= horizon);
                let stored_or_idle = *last_input <= idle_since || !self.dirty.contains_key(id);
                if !timer_soon && !stored_or_idle {
                    unstored += 1;
                }
                (!timer_soon && stored_or_idle).then_some((*last_input, *id, actor))
            })
            .collect();
        let idle = quiet
            .iter()
            .filter(|(last_input, ..)| *last_input <= idle_since)
            .count();
        let over_cap = if self.actors.len() > settings.max_resident {
            self.actors.len() - settings.max_resident * 9 / 10
        } else {
            0
        };
        // The idle ones and, over the cap, enough of the least recently used
        // besides: the first `stop` by last input, in any order (a partial
        // selection; sorting every running actor cost more).
        let stop = idle.max(over_cap).min(quiet.len());
        if stop > 0 && stop < quiet.len() {
            quiet.select_nth_unstable_by_key(stop - 1, |(last_input, ..)| *last_input);
        }
        let mut asks = Vec::new();
        for (_, id, actor) in quiet.into_iter().take(stop) {
            let (tx, rx) = oneshot::channel();
            if actor.cast(IncidentMsg::Passivate(tx)).is_ok() {
                asks.push((id, actor.get_id(), rx));
            }
        }
        let mut passivated = 0;
        for (id, actor_id, reply) in asks {
            // No reply means the actor failed; supervision restarts it.
            let Ok(bytes) = reply.await else { continue };
            self.actors.remove(&actor_id);
            if let Some(entry) = self.incidents.get_mut(&id) {
                let group = entry.group().clone();
                *entry = Entry::passive(bytes, group);
                passivated += 1;
            }
        }
        telemetry::passivated(passivated);
        self.resident_after_sweep = self.actors.len().saturating_sub(unstored);
        if !self.actors.is_empty() {
            self.schedule_sweep(myself);
        }
    }
}
