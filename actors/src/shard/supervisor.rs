use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{oneshot, watch};

use crate::engine::EngineError;
use crate::incident::{
    decode_incident, encode_incident, take_alerts, IncidentActor, IncidentArgs, IncidentMsg,
    RecordRuns,
};
use crate::model::{
    Alert, AlertStatus, Command, CommandError, CompactString, Incident, IncidentId,
    IncidentSummary, NewIncident, StableHash, Timestamp,
};
use crate::ports::{Progress, SourcePosition};
use crate::restore::RestoredIncident;
use crate::routing::RouteSettings;
use crate::telemetry;

use super::batch::{GroupInput, ShardAlerts};
use super::context::IncidentUpdate;
use super::entry::{group_of, Entry, GroupRef};
use super::flush::{FlushControl, FlushOutcome, Input, Round, RoundHistory, RoundInput};
use super::passivation::SweepTrigger;
use super::passive_input::PassiveAlerts;
use super::resend::AwaitedResends;
use super::timers::{spawn_timer_task, TimerIndex};
use super::{IdMap, ShardContext};

/// Told once the changes it waited for are stored (or why they were not).
pub(crate) type Waiter = oneshot::Sender<Result<(), EngineError>>;
pub(crate) type SummaryReply = oneshot::Sender<Result<Arc<IncidentSummary>, CommandError>>;

/// The shard of a group: a stable hash (FNV-1a), the same on every replica
/// and every run, so one group key always lands on one shard.
pub(crate) fn shard_of(tenant: &str, group_key: &str, shards: usize) -> usize {
    let hash = StableHash::new()
        .write(tenant.as_bytes())
        .write(&[0])
        .write(group_key.as_bytes())
        .finish();
    (hash % shards.max(1) as u64) as usize
}

pub(crate) enum ShardMsg {
    Alerts {
        alerts: ShardAlerts,
        progress: Progress,
        durable: Option<Waiter>,
        /// When the engine took the batch, for the alert-to-event latency.
        received: Instant,
    },
    Command {
        id: IncidentId,
        command: Command,
        actor: String,
        position: Option<SourcePosition>,
        reply: SummaryReply,
        /// Told once the commit of the round the shard applied it in ends.
        durable: Waiter,
    },
    Create {
        id: IncidentId,
        request: NewIncident,
        actor: String,
        position: Option<SourcePosition>,
        reply: SummaryReply,
        /// Told once the commit of the round the shard applied it in ends.
        durable: Waiter,
    },
    Get {
        id: IncidentId,
        reply: oneshot::Sender<Option<Incident>>,
    },
    /// The incident a group's next alert would go to, if any.
    CurrentOf {
        tenant: CompactString,
        group_key: String,
        reply: oneshot::Sender<Option<IncidentId>>,
    },
    /// Answers once everything the shard took before it is stored.
    Sync(Waiter),
    Updated(IncidentUpdate),
    /// Alerts an incident could not take (resolved past its reopen window,
    /// or archived): they open a new incident for their group.
    Bounced {
        from: IncidentId,
        group: GroupRef,
        route: Arc<RouteSettings>,
        alerts: Vec<Alert>,
        records: RecordRuns,
    },
    TimersDue,
    Flush,
    FlushDone(FlushOutcome),
    Sweep,
    /// More incident actors are running than `max_resident`.
    Crowded,
    Stop(oneshot::Sender<()>),
    #[cfg(test)]
    CrashIncident(IncidentId),
    /// Test hook: the incidents whose actor is running.
    #[cfg(test)]
    Resident(oneshot::Sender<Vec<IncidentId>>),
}

pub(crate) struct ShardSupervisor;

pub(crate) struct ShardArgs {
    pub context: Arc<ShardContext>,
    /// The restored incidents, kept passivated until their next input.
    pub restored: Vec<RestoredIncident>,
    pub offsets: BTreeMap<String, i64>,
}

pub(crate) struct ShardState {
    pub(super) context: Arc<ShardContext>,
    pub(super) incidents: IdMap<IncidentId, Entry>,
    /// The current incident of each group: where its next alert goes.
    groups: HashMap<GroupRef, IncidentId>,
    pub(super) actors: IdMap<ActorId, IncidentId>,
    pub(super) timers: TimerIndex,
    earliest: watch::Sender<Option<Timestamp>>,
    timer_task: tokio::task::JoinHandle<()>,
    /// Incidents with changes the next commit stores, with what reached
    /// each this round (nothing, for one only to be written again).
    pub(super) dirty: IdMap<IncidentId, RoundInput>,
    pub(super) archived: Vec<(IncidentId, Arc<Vec<u8>>)>,
    pub(super) round: Round,
    pub(super) offsets: BTreeMap<String, i64>,
    pub(super) resends: AwaitedResends,
    pub(super) flush: FlushControl,
    pub(super) sweep_scheduled: bool,
    /// A `Crowded` sweep is queued.
    pub(super) crowded_sweep_queued: bool,
    /// Actors the last sweep left running for a deadline soon (see
    /// `check_crowding`).
    pub(super) resident_after_sweep: usize,
    pub(super) stopping: bool,
    /// A newer owner claimed the shard in the store: nothing here may be
    /// stored any more.
    pub(super) fenced: bool,
}

impl Actor for ShardSupervisor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<ShardState, ActorProcessingErr> {
        let context = args.context;
        let (earliest, earliest_rx) = watch::channel(None);
        let timer_task = spawn_timer_task(earliest_rx, context.clock.clone(), myself.clone());
        let mut state = ShardState {
            context,
            incidents: IdMap::default(),
            groups: HashMap::new(),
            actors: IdMap::default(),
            timers: TimerIndex::default(),
            earliest,
            timer_task,
            dirty: IdMap::default(),
            archived: Vec::new(),
            round: Round::default(),
            offsets: args.offsets,
            resends: AwaitedResends::default(),
            flush: FlushControl::default(),
            sweep_scheduled: false,
            crowded_sweep_queued: false,
            resident_after_sweep: 0,
            stopping: false,
            fenced: false,
        };
        // Ids are ULIDs, so in id order the newest incident of a group comes
        // last and becomes the group's current one.
        let mut restored = args.restored;
        restored.sort_unstable_by_key(|incident| incident.id);
        state.incidents.reserve(restored.len());
        state.groups.reserve(restored.len());
        state.timers.reserve(restored.len());
        let mut redelivered = Vec::new();
        for restored in restored {
            let RestoredIncident {
                id,
                group,
                deadline,
                timer_generation,
                summary,
                bytes,
                redelivery,
            } = restored;
            redelivered.extend(redelivery);
            state.groups.insert(group.clone(), id);
            state.timers.set(id, deadline, timer_generation);
            state.context.read_model.insert(summary);
            state.incidents.insert(id, Entry::passive(bytes, group));
        }
        if !redelivered.is_empty() {
            telemetry::escalations_redelivered(redelivered.len());
            state.context.sink.publish(&redelivered);
        }
        state.publish_earliest(true);
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ShardMsg>,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.context.settings.passivation.enabled {
            let ids: Vec<IncidentId> = state.incidents.keys().copied().collect();
            for id in ids {
                state.resident(&myself, id).await;
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        message: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ShardMsg::Alerts {
                alerts,
                progress,
                durable,
                received,
            } => {
                state
                    .on_alerts(&myself, alerts, progress, durable, received)
                    .await
            }
            ShardMsg::Command {
                id,
                command,
                actor,
                position,
                reply,
                durable,
            } => {
                if state.advance(position) {
                    state.on_command(&myself, id, command, actor, reply).await;
                } else {
                    state.answer_replay(id, reply);
                }
                // The answer reaches the caller before it is stored, and the
                // incident may fail in between: the wait is this round's.
                state.wait_for_commit(&myself, durable);
            }
            ShardMsg::Create {
                id,
                request,
                actor,
                position,
                reply,
                durable,
            } => {
                if state.advance(position) {
                    state.on_create(&myself, id, request, actor, reply).await;
                } else {
                    state.answer_replay(id, reply);
                }
                // The answer reaches the caller before it is stored, and the
                // incident may fail in between: the wait is this round's.
                state.wait_for_commit(&myself, durable);
            }
            ShardMsg::Get { id, reply } => state.on_get(id, reply),
            ShardMsg::CurrentOf {
                tenant,
                group_key,
                reply,
            } => {
                let _ = reply.send(state.groups.get(&(tenant, group_key)).copied());
            }
            ShardMsg::Sync(waiter) => state.wait_for_commit(&myself, waiter),
            ShardMsg::Updated(update) => state.on_updated(&myself, update),
            ShardMsg::Bounced {
                from,
                group,
                route,
                alerts,
                records,
            } => {
                let now = state.context.clock.now();
                // Handed back alerts count from now: their first arrival is not kept.
                let received = Instant::now();
                match state.groups.get(&group).copied() {
                    Some(current) if current != from => {
                        state
                            .send_alerts(&myself, current, alerts, records, now, received)
                            .await
                    }
                    _ => {
                        state.groups.remove(&group);
                        let input = GroupInput {
                            group,
                            route,
                            alerts,
                            records,
                        };
                        state.open_incident(&myself, input, now, received).await;
                    }
                }
                state.schedule_flush(&myself);
            }
            ShardMsg::TimersDue => state.on_timers_due(&myself).await,
            ShardMsg::Flush => state.start_flush(&myself),
            ShardMsg::FlushDone(outcome) => state.finish_flush(&myself, outcome),
            ShardMsg::Sweep => state.sweep(&myself, SweepTrigger::Timer).await,
            ShardMsg::Crowded => state.sweep(&myself, SweepTrigger::Crowded).await,
            ShardMsg::Stop(done) => state.on_stop(&myself, done).await,
            #[cfg(test)]
            ShardMsg::CrashIncident(id) => {
                if let Some(Entry::Active { actor, .. }) = state.incidents.get(&id) {
                    let _ = actor.cast(IncidentMsg::Crash);
                }
            }
            #[cfg(test)]
            ShardMsg::Resident(reply) => {
                let _ = reply.send(state.actors.values().copied().collect());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardMsg>,
        event: SupervisionEvent,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                state
                    .restart(&myself, cell.get_id(), &error.to_string())
                    .await;
            }
            // A stop the shard did not ask for (it forgets an actor before
            // retiring or passivating it) is a failure too.
            SupervisionEvent::ActorTerminated(cell, _, reason)
                if state.actors.contains_key(&cell.get_id()) =>
            {
                let reason = reason.unwrap_or_else(|| "stopped".into());
                state.restart(&myself, cell.get_id(), &reason).await;
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ShardMsg>,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer_task.abort();
        Ok(())
    }
}

impl ShardState {
    async fn on_alerts(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        alerts: ShardAlerts,
        progress: Progress,
        durable: Option<Waiter>,
        received: Instant,
    ) {
        let count = alerts.len();
        if self.stopping {
            self.context.load.release(count);
            if let Some(waiter) = durable {
                let _ = waiter.send(Err(EngineError::ShuttingDown));
            }
            return;
        }
        if !self.advance(progress.position) {
            telemetry::alerts_replayed(count);
        } else {
            for origin in progress.origins {
                let applied = self.offsets.entry(origin.source).or_insert(origin.offset);
                *applied = (*applied).max(origin.offset);
            }
            let now = self.context.clock.now();
            for input in alerts.groups {
                match self.groups.get(&input.group).copied() {
                    Some(id) => {
                        self.send_alerts(myself, id, input.alerts, input.records, now, received)
                            .await
                    }
                    None => self.open_incident(myself, input, now, received).await,
                }
            }
        }
        self.round.alerts += count;
        self.round.waiters.extend(durable);
        self.schedule_flush(myself);
    }

    /// Answers `waiter` once the commit of the current round ends, or tells
    /// it to resend when the round is lost.
    fn wait_for_commit(&mut self, myself: &ActorRef<ShardMsg>, waiter: Waiter) {
        self.round.waiters.push(waiter);
        self.schedule_flush(myself);
    }

    /// Records that `position` is applied; false when it was already (a
    /// replay after a restart or hand-over), so its input must change nothing.
    /// A position whose input was lost and resent is applied again.
    fn advance(&mut self, position: Option<SourcePosition>) -> bool {
        let Some(position) = position else {
            return true;
        };
        // Stored with the next flush that has changes; input that changed
        // nothing may be replayed harmlessly.
        if !self.resends.take(&position) {
            match self.offsets.get_mut(&position.source) {
                Some(applied) if position.offset <= *applied => return false,
                Some(applied) => *applied = position.offset,
                None => {
                    self.offsets
                        .insert(position.source.clone(), position.offset);
                }
            }
        }
        self.round.positions.push(position);
        true
    }

    /// A replayed command or creation was applied before: answer with the
    /// incident as it is.
    fn answer_replay(&self, id: IncidentId, reply: SummaryReply) {
        let _ = reply.send(
            self.context
                .read_model
                .get(&id)
                .ok_or(CommandError::NotFound(id)),
        );
    }

    async fn on_command(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
        command: Command,
        actor: String,
        reply: SummaryReply,
    ) {
        match self.resident(myself, id).await {
            Some(incident) => {
                let _ = incident.cast(IncidentMsg::Command {
                    command,
                    actor,
                    reply,
                });
                self.took_input(id, &incident, Input::Command(self.context.clock.now()));
                self.schedule_flush(myself);
            }
            None => {
                let _ = reply.send(Err(CommandError::NotFound(id)));
            }
        }
    }

    async fn on_create(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
        request: NewIncident,
        actor: String,
        reply: SummaryReply,
    ) {
        let now = self.context.clock.now();
        let mut events = Vec::new();
        let incident =
            Incident::open_manual(id, &request, &actor, now, &self.context.rules, &mut events);
        let summary = events.last().map(|e| e.incident.clone());
        self.context.publish(&incident, events);
        let group = group_of(&incident);
        self.groups.insert(group.clone(), id);
        self.install(myself, incident, group, now).await;
        let _ = reply.send(
            summary
                .ok_or_else(|| CommandError::Unavailable("incident created without event".into())),
        );
    }

    fn on_get(&mut self, id: IncidentId, reply: oneshot::Sender<Option<Incident>>) {
        match self.incidents.get(&id) {
            Some(Entry::Active { actor, .. }) => {
                if let Err(e) = actor.cast(IncidentMsg::Get(reply)) {
                    tracing::warn!(incident = %id, error = %e, "incident actor unreachable for a read");
                }
            }
            Some(Entry::Passive { bytes, .. }) => {
                let _ = reply.send(decode_incident(&id.to_string(), bytes).ok());
            }
            None => {
                let _ = reply.send(None);
            }
        }
    }

    fn on_updated(&mut self, myself: &ActorRef<ShardMsg>, update: IncidentUpdate) {
        let Some(final_state) = update.archived else {
            if self.incidents.contains_key(&update.id) {
                self.timers
                    .set(update.id, update.deadline, update.generation);
                self.publish_earliest(false);
            }
            return;
        };
        self.retire_archived(myself, update.id, final_state);
    }

    /// Takes an archived incident out of the live set; the next commit
    /// moves `final_state` to the archive.
    pub(super) fn retire_archived(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
        final_state: Arc<Vec<u8>>,
    ) {
        self.timers.remove(id);
        if let Some(entry) = self.incidents.remove(&id) {
            if let Entry::Active { actor, .. } = &entry {
                self.actors.remove(&actor.get_id());
                // Through the mailbox, so input queued before it is still
                // handled (and bounced to a new incident).
                let _ = actor.cast(IncidentMsg::Retire);
            }
            if self.groups.get(entry.group()) == Some(&id) {
                self.groups.remove(entry.group());
            }
        }
        self.dirty.remove(&id);
        self.flush.write_whole.remove(&id);
        self.archived.push((id, final_state));
        self.publish_earliest(false);
        self.schedule_flush(myself);
    }

    async fn on_timers_due(&mut self, myself: &ActorRef<ShardMsg>) {
        let now = self.context.clock.now();
        for (id, generation) in self.timers.pop_due(now) {
            if self.applies_input_while_passive()
                && self.fire_while_passive(myself, id, generation, now)
            {
                continue;
            }
            if let Some(incident) = self.resident(myself, id).await {
                let _ = incident.cast(IncidentMsg::Timer { generation });
                self.took_input(id, &incident, Input::Timer);
            }
        }
        // Always publish, even an unchanged deadline: the timer task waits
        // for it before sleeping again.
        self.publish_earliest(true);
        self.schedule_flush(myself);
    }

    async fn on_stop(&mut self, myself: &ActorRef<ShardMsg>, done: oneshot::Sender<()>) {
        self.stopping = true;
        if self.flush.in_flight {
            // Let the running flush report back first.
            drop(
                myself.send_after(std::time::Duration::from_millis(5), move || {
                    ShardMsg::Stop(done)
                }),
            );
            return;
        }
        for _ in 0..5 {
            if self.fenced {
                break;
            }
            let Some(job) = self.begin_flush() else { break };
            let outcome = super::flush::run(job, self.context.clone()).await;
            self.finish_flush(myself, outcome);
        }
        let _ = done.send(());
        self.teardown(myself, "shard stopped");
    }

    /// Retires every incident actor, drops the shard's incidents from the
    /// read model (another replica serves them next) and stops the shard.
    pub(super) fn teardown(&mut self, myself: &ActorRef<ShardMsg>, reason: &str) {
        self.stopping = true;
        for (id, entry) in self.incidents.drain() {
            if let Entry::Active { actor, .. } = entry {
                self.actors.remove(&actor.get_id());
                let _ = actor.cast(IncidentMsg::Retire);
            }
            self.context.read_model.remove(&id);
        }
        self.timer_task.abort();
        myself.stop(Some(reason.into()));
    }

    pub(super) async fn send_alerts(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
        alerts: Vec<Alert>,
        records: RecordRuns,
        now: Timestamp,
        received: Instant,
    ) {
        // Below the cap (nearly always) this costs no second lookup.
        let taken = if self.applies_input_while_passive()
            && matches!(self.incidents.get(&id), Some(Entry::Passive { .. }))
        {
            match self.apply_while_passive(id, alerts, records, now, received) {
                PassiveAlerts::Taken => true,
                PassiveAlerts::Bounced(next) => {
                    self.open_incident(myself, next, now, received).await;
                    true
                }
                PassiveAlerts::NotApplied => false,
            }
        } else if let Some(incident) = self.resident(myself, id).await {
            let snapshot = self.took_input(id, &incident, Input::Alerts(now));
            let _ = incident.cast(IncidentMsg::Alerts {
                alerts,
                records,
                received,
                snapshot,
            });
            true
        } else {
            false
        };
        if !taken {
            tracing::error!(shard = self.context.shard, incident = %id, "incident could not be activated or updated; its alerts are not acknowledged");
            self.round.lost = true;
        }
    }

    /// Opens a new incident for `group` from its first firing alert. Resolved
    /// alerts before it have no incident to resolve and are only counted.
    pub(super) async fn open_incident(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        input: GroupInput,
        now: Timestamp,
        received: Instant,
    ) {
        let GroupInput {
            group,
            route,
            alerts,
            records,
        } = input;
        let Some(first_firing) = alerts.iter().position(|a| a.status == AlertStatus::Firing) else {
            telemetry::alerts_without_incident(alerts.len());
            return;
        };
        telemetry::alerts_without_incident(first_firing);
        let mut alerts = alerts.into_iter().skip(first_firing);
        let Some(first) = alerts.next() else { return };
        let mut events = Vec::new();
        let id = match records.at(first_firing) {
            Some(record) => IncidentId::opened_by(record, &group.0, &group.1),
            None => IncidentId::new(now),
        };
        let mut incident = Incident::open(
            id,
            (&group.0, &group.1),
            &route,
            &first,
            now,
            &self.context.rules,
            &mut events,
        );
        self.context.publish(&incident, events);
        telemetry::alert_to_event(received.elapsed());
        let rest: Vec<Alert> = alerts.collect();
        if !rest.is_empty() {
            let bounced = take_alerts(&mut incident, rest, &self.context, now, received);
            debug_assert!(
                bounced.is_empty(),
                "a new incident is not resolved, so it takes every alert"
            );
            // The last event's summary misses what raised no event (a
            // duplicate's count), and a passivated incident's summary is
            // not refreshed by its first flush.
            self.context.read_model.insert(Arc::new(incident.summary()));
        }
        self.groups.insert(group.clone(), id);
        self.install(myself, incident, group, now).await;
    }

    /// Adds a new incident to the shard: passivated right away when
    /// passivation is on (its actor starts with its next input), resident
    /// otherwise.
    async fn install(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        incident: Incident,
        group: GroupRef,
        now: Timestamp,
    ) {
        let id = incident.id;
        let bytes = Arc::new(encode_incident(&incident));
        self.timers
            .set(id, incident.next_deadline(), incident.timer_generation);
        self.publish_earliest(false);
        self.mark_dirty([id]);
        if self.context.settings.passivation.enabled {
            self.incidents.insert(id, Entry::passive(bytes, group));
        } else if let Some(actor) = self.spawn(myself, incident).await {
            self.incidents.insert(
                id,
                Entry::Active {
                    actor,
                    group,
                    last_input: now,
                    restart_from: vec![bytes],
                    rounds: RoundHistory::default(),
                },
            );
        } else {
            self.incidents.insert(id, Entry::passive(bytes, group));
        }
    }

    /// The actor of a live incident, starting it from its passivated state
    /// when needed.
    pub(super) async fn resident(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: IncidentId,
    ) -> Option<ActorRef<IncidentMsg>> {
        let (bytes, group) = match self.incidents.get(&id)? {
            Entry::Active { actor, .. } => return Some(actor.clone()),
            Entry::Passive { bytes, group, .. } => (bytes.clone(), group.clone()),
        };
        let incident = self.decode_passive(id, &bytes)?;
        let actor = self.spawn(myself, incident).await?;
        telemetry::activated();
        self.incidents.insert(
            id,
            Entry::Active {
                actor: actor.clone(),
                group,
                last_input: self.context.clock.now(),
                restart_from: vec![bytes],
                rounds: RoundHistory::default(),
            },
        );
        Some(actor)
    }

    /// A passivated incident's state, or None (logged and counted) when its
    /// bytes do not decode.
    pub(super) fn decode_passive(&self, id: IncidentId, bytes: &[u8]) -> Option<Incident> {
        match decode_incident(&id.to_string(), bytes) {
            Ok(incident) => Some(incident),
            Err(e) => {
                tracing::error!(shard = self.context.shard, error = %e, "passivated incident cannot be decoded");
                telemetry::snapshot_rejected();
                None
            }
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        incident: Incident,
    ) -> Option<ActorRef<IncidentMsg>> {
        let id = incident.id;
        let args = IncidentArgs {
            incident,
            context: self.context.clone(),
            shard: myself.clone(),
        };
        match Actor::spawn_linked(None, IncidentActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.actors.insert(actor.get_id(), id);
                self.schedule_sweep(myself);
                self.check_crowding(myself);
                Some(actor)
            }
            Err(e) => {
                tracing::error!(shard = self.context.shard, incident = %id, error = %e, "cannot start incident actor");
                None
            }
        }
    }

    /// Restarts a failed incident from its last stored state. What it took
    /// since then is gone, so the current round's callers are told to send
    /// again rather than told it was stored.
    async fn restart(&mut self, myself: &ActorRef<ShardMsg>, actor: ActorId, reason: &str) {
        let Some(id) = self.actors.remove(&actor) else {
            return;
        };
        let Some(Entry::Active {
            restart_from,
            group,
            ..
        }) = self.incidents.remove(&id)
        else {
            return;
        };
        tracing::error!(shard = self.context.shard, incident = %id, reason, "incident actor failed; restarting it from its last stored state");
        telemetry::incident_restarted();
        // Input taken so far may have been in the failed actor's mailbox;
        // input from now on goes to the restarted incident.
        let waiters = std::mem::take(&mut self.round.waiters);
        let positions = std::mem::take(&mut self.round.positions);
        self.ask_to_resend(waiters, positions);
        self.flush.restarted_in_flight |= self.flush.in_flight;
        let frames: Vec<&[u8]> = restart_from.iter().map(|frame| frame.as_slice()).collect();
        let bytes = Arc::new(frames.concat());
        self.incidents
            .insert(id, Entry::passive(bytes.clone(), group));
        if let Ok(incident) = decode_incident(&id.to_string(), &bytes) {
            self.timers
                .set(id, incident.next_deadline(), incident.timer_generation);
            self.context.read_model.insert(Arc::new(incident.summary()));
            self.publish_earliest(false);
        }
        if !self.context.settings.passivation.enabled {
            self.resident(myself, id).await;
        }
    }

    /// Tells the timer task the earliest deadline when it changed (or always,
    /// with `force`).
    pub(super) fn publish_earliest(&mut self, force: bool) {
        let earliest = self.timers.earliest();
        if force || earliest != *self.earliest.borrow() {
            self.earliest.send_replace(earliest);
        }
    }

    pub(super) fn live_count(&self) -> usize {
        self.incidents.len()
    }

    pub(super) fn resident_count(&self) -> usize {
        self.actors.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn shard_of_is_stable_and_spreads() {
        assert_eq!(shard_of("t", "g1", 8), shard_of("t", "g1", 8));
        let used: HashSet<usize> = (0..200)
            .map(|i| shard_of("t", &format!("g{i}"), 8))
            .collect();
        assert_eq!(used.len(), 8);
        assert_ne!(shard_of("a", "bc", 1 << 20), shard_of("ab", "c", 1 << 20));
    }
}
