use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::incident::IncidentMsg;
use crate::model::Timestamp;
use crate::telemetry;

use super::entry::Entry;
use super::supervisor::{ShardMsg, ShardState};

impl ShardState {
    pub(super) fn schedule_sweep(&mut self, myself: &ActorRef<ShardMsg>) {
        let settings = &self.context.settings.passivation;
        if settings.enabled && !self.sweep_scheduled {
            self.sweep_scheduled = true;
            drop(myself.send_after(settings.check_interval, || ShardMsg::Sweep));
        }
    }

    /// Stops the actors of quiet incidents (no input for `idle_after`, no
    /// deadline within `timer_horizon`) and keeps their encoded state.
    /// Waiting for the replies here is deliberate: while the shard waits it
    /// sends those actors nothing new, so no input can be lost between the
    /// actor's last message and its stop.
    pub(super) async fn sweep(&mut self, myself: &ActorRef<ShardMsg>) {
        self.sweep_scheduled = false;
        let settings = self.context.settings.passivation.clone();
        let now = self.context.clock.now();
        let idle_since = Timestamp(now.millis() - settings.idle_after.as_millis() as i64);
        let horizon = now.plus(settings.timer_horizon);
        let mut asks = Vec::new();
        for (id, entry) in &self.incidents {
            let Entry::Active {
                actor, last_input, ..
            } = entry
            else {
                continue;
            };
            let timer_soon = self.timers.deadline_of(*id).is_some_and(|at| at <= horizon);
            if *last_input <= idle_since && !timer_soon {
                let (tx, rx) = oneshot::channel();
                if actor.cast(IncidentMsg::Passivate(tx)).is_ok() {
                    asks.push((*id, actor.get_id(), rx));
                }
            }
        }
        let mut passivated = 0;
        for (id, actor_id, reply) in asks {
            // No reply means the actor failed; supervision restarts it.
            let Ok(bytes) = reply.await else { continue };
            self.actors.remove(&actor_id);
            if let Some(entry) = self.incidents.get_mut(&id) {
                let group = entry.group().clone();
                *entry = Entry::Passive {
                    bytes: Arc::new(bytes),
                    group,
                };
                passivated += 1;
            }
        }
        telemetry::passivated(passivated);
        if !self.actors.is_empty() {
            self.schedule_sweep(myself);
        }
    }
}
