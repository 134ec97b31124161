use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;

use crate::incident::{encode_incident, take_alerts, RecordRuns, SnapshotWriter};
use crate::model::{Alert, Incident, IncidentId, Timestamp};
use crate::ports::SnapshotWrite;
use crate::telemetry;

use super::batch::GroupInput;
use super::entry::{group_of, Entry};
use super::flush::Input;
use super::supervisor::{ShardMsg, ShardState};

impl ShardState {
    /// Whether alerts and due timers for a passivated incident are applied
    /// by the shard rather than by waking its actor: once `max_resident`
    /// actors run. Past the cap, a woken actor would only make a sweep stop
    /// another (a storm wider than the cap started and stopped an actor per
    /// alert), and while the store fails it could not be stopped at all.
    /// Commands still wake incidents: people send them, a few at a time.
    pub(super) fn applies_input_while_passive(&self) -> bool {
        let settings = &self.context.settings.passivation;
        settings.enabled && self.actors.len() >= settings.max_resident
    }

    /// Applies `alerts` to the passivated incident `id` the way its actor
    /// would (`take_alerts`), and keeps it passivated with its new state;
    /// the next commit stores what changed (`PassiveWrites`).
    pub(super) fn apply_while_passive(
        &mut self,
        id: IncidentId,
        alerts: Vec<Alert>,
        records: RecordRuns,
        now: Timestamp,
        received: Instant,
    ) -> PassiveAlerts {
        let Some(mut incident) = self.passive_incident(id) else {
            return PassiveAlerts::NotApplied;
        };
        telemetry::updated_while_passive();
        let count = alerts.len();
        let bounced = take_alerts(&mut incident, alerts, &self.context, now, received);
        // Duplicates raise no event, so the read model has not seen their
        // counts; a passivated incident's summary is not refreshed by its
        // commit either.
        self.context.read_model.insert(Arc::new(incident.summary()));
        self.timers
            .set(id, incident.next_deadline(), incident.timer_generation);
        self.publish_earliest(false);
        self.keep_passive(id, &mut incident, now, Input::Alerts(now));
        if bounced.is_empty() {
            return PassiveAlerts::Taken;
        }
        PassiveAlerts::Bounced(GroupInput {
            group: group_of(&incident),
            route: Arc::new(incident.route),
            records: records.split_off(count - bounced.len()),
            alerts: bounced,
        })
    }

    /// Fires the due deadlines of the passivated incident `id` the way its
    /// actor would (`Incident::fire_due`): publishes their events, re-arms
    /// its timer and keeps it passivated, or hands it to the archive when
    /// its retention ran out. False when the incident is not passivated
    /// here or its state cannot be decoded.
    pub(super) fn fire_while_passive(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
        generation: u64,
        now: Timestamp,
    ) -> bool {
        let Some(mut incident) = self.passive_incident(id) else {
            return false;
        };
        // A timer armed before the incident's deadlines last changed: the
        // index gets the current deadline back, as from an actor.
        if generation == incident.timer_generation {
            telemetry::updated_while_passive();
            let mut events = Vec::new();
            incident.fire_due(now, &self.context.rules, &mut events);
            self.context.publish(&incident, events);
            if incident.archived {
                self.retire_archived(myself, id, Arc::new(encode_incident(&incident)));
                return true;
            }
            self.keep_passive(id, &mut incident, now, Input::Timer);
        }
        self.timers
            .set(id, incident.next_deadline(), incident.timer_generation);
        true
    }

    /// The state of `id` when it is passivated here and decodes.
    fn passive_incident(&self, id: IncidentId) -> Option<Incident> {
        let Some(Entry::Passive { bytes, .. }) = self.incidents.get(&id) else {
            return None;
        };
        self.decode_passive(id, bytes)
    }

    /// Keeps `incident` passivated with its state after `input`; the next
    /// commit stores what changed (`PassiveWrites`).
    fn keep_passive(
        &mut self,
        id: IncidentId,
        incident: &mut Incident,
        now: Timestamp,
        input: Input,
    ) {
        // A commit that failed may not have stored the last write.
        let whole = self.flush.take_write_whole(&id);
        if let Some(Entry::Passive { bytes, writes, .. }) = self.incidents.get_mut(&id) {
            let writes = writes.get_or_insert_with(|| {
                Box::new(PassiveWrites::new(self.context.store.takes_counts_frames()))
            });
            *bytes = match writes.update(incident, now, input, whole) {
                // One encoding serves as the state kept and the one stored.
                SnapshotWrite::Whole(whole) => whole.clone(),
                SnapshotWrite::Append(_) => Arc::new(encode_incident(incident)),
            };
        }
        self.mark_dirty([id]);
    }
}

/// What became of alerts for a passivated incident the shard applied.
pub(super) enum PassiveAlerts {
    /// The incident took them all.
    Taken,
    /// It took the first ones; the rest (a firing alert after its reopen
    /// window, and those after it) open the group's next incident.
    Bounced(GroupInput),
    /// It is not passivated here, or its state cannot be decoded.
    NotApplied,
}

/// How a passivated incident the shard updates (at `max_resident`) is
/// stored: the changes since its last write appended, as its actor would
/// write them (`SnapshotWriter`), not its whole encoding at every commit.
/// Under a storm wider than the cap that is a frame of a few dozen bytes
/// per duplicate instead of the incident's kilobyte or more. Only incidents
/// the shard updates have one; a woken incident's actor starts whole.
pub(crate) struct PassiveWrites {
    writer: SnapshotWriter,
    /// What the next commit stores.
    next: Option<SnapshotWrite>,
    /// The incident's `seq` and the time of its last update: where a
    /// whole write of its state leaves the writer.
    updated: (u64, Timestamp),
}

impl PassiveWrites {
    fn new(counts_frames: bool) -> Self {
        PassiveWrites {
            writer: SnapshotWriter::new(counts_frames),
            next: None,
            updated: (0, Timestamp(0)),
        }
    }

    /// The write of `incident` just updated at `now` by `input`, whole if
    /// asked. It replaces one no commit took yet, whose changes it holds
    /// too.
    fn update(
        &mut self,
        incident: &mut Incident,
        now: Timestamp,
        input: Input,
        whole: bool,
    ) -> &SnapshotWrite {
        if whole {
            self.forget();
        } else if self.next.is_some() {
            self.writer.undo();
        }
        if !matches!(input, Input::Alerts(_)) {
            self.writer.note_other_input();
        }
        self.updated = (incident.seq, now);
        self.next.insert(self.writer.write(incident, now))
    }

    /// What a commit stores of the incident whose state (as of its last
    /// update) is `bytes`: that update's write, or else (`whole`: the
    /// commit that took the last write failed) the state whole, which the
    /// next update continues from.
    pub fn take(&mut self, bytes: &Arc<Vec<u8>>, whole: bool) -> SnapshotWrite {
        if whole {
            self.forget();
        }
        self.next.take().unwrap_or_else(|| {
            let (seq, at) = self.updated;
            self.writer.wrote_whole(bytes.len(), seq, at);
            SnapshotWrite::Whole(bytes.clone())
        })
    }

    /// The store may not hold the last write: write whole next.
    fn forget(&mut self) {
        self.writer.forget();
        self.next = None;
    }
}
