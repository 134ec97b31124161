use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef, ActorStatus};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::escalation::{EscalationPolicies, EscalationPolicy};
use crate::incident::{manual_group_key, IncidentRules};
use crate::model::{
    Alert, Command, CommandError, Incident, IncidentId, IncidentSummary, NewIncident,
};
use crate::ports::{
    Clock, EventSink, Progress, ShardSnapshot, SnapshotStore, SourcePosition, StoreError,
};
use crate::read_model::ReadModel;
use crate::restore::{decode_shard, RejectedSnapshot, RestoreAt};
use crate::routing::{RouteConfig, RoutingTree};
use crate::settings::EngineSettings;
use crate::shard::{
    shard_of, BatchSplit, RoutedAlert, ShardAlerts, ShardArgs, ShardContext, ShardLoad, ShardMsg,
    ShardSupervisor,
};
use crate::telemetry;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("shard {shard} is full ({pending} alerts not yet stored, capacity {capacity}); retry shortly")]
    Busy {
        shard: usize,
        pending: usize,
        capacity: usize,
    },
    #[error("changes could not be stored ({0}); they are not acknowledged, send them again")]
    NotDurable(String),
    #[error("{0}; send again")]
    Retry(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("shard {shard} is not running on this replica (it moved, or the service is stopping); send again")]
    NotOwned { shard: usize },
    #[error("no shard {shard}: the engine has {shards}")]
    NoSuchShard { shard: usize, shards: usize },
    #[error("restoring shard {shard}: {source}")]
    Restore { shard: usize, source: StoreError },
    #[error("shard {shard} could not start: {message}")]
    Spawn { shard: usize, message: String },
}

/// Alerts handed to their shards, until their effect is stored.
#[must_use = "the alerts are only known stored once this resolves"]
pub struct Stored {
    waits: Vec<(usize, oneshot::Receiver<Result<(), EngineError>>)>,
}

impl Stored {
    /// Ok once every shard stored its part; a shard that stopped meanwhile
    /// answers `NotOwned`.
    pub async fn stored(self) -> Result<(), EngineError> {
        for (shard, wait) in self.waits {
            wait.await.map_err(|_| EngineError::NotOwned { shard })??;
        }
        Ok(())
    }
}

/// The engine's outside connections.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn SnapshotStore>,
    pub sink: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
}

/// What a start restored.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub incidents: usize,
    /// Entries that could not be decoded; they were skipped.
    pub rejected: Vec<RejectedSnapshot>,
    pub duration: Duration,
}

/// What `submit` took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// Alerts taken and stored.
    pub alerts: usize,
}

/// Checks a routing tree and escalation policies together, reporting every
/// problem at once.
pub fn compile_rules(
    routing: &RouteConfig,
    policies: Vec<EscalationPolicy>,
) -> Result<(RoutingTree, EscalationPolicies), Vec<String>> {
    let policies = EscalationPolicies::new(policies)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let tree = RoutingTree::new(routing, &policies)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok((tree, policies))
}

/// A running engine: N shard slots, each empty or holding a shard that
/// supervises its incident actors. Standalone, every slot is filled at
/// start; in a cluster, a slot is filled while this replica owns the shard
/// (`acquire_shard` / `release_shard`, driven by the Kafka consumer group).
pub struct Engine {
    routing: Arc<RoutingTree>,
    slots: Vec<RwLock<Option<ActorRef<ShardMsg>>>>,
    loads: Vec<Arc<ShardLoad>>,
    read_model: Arc<ReadModel>,
    settings: EngineSettings,
    rules: IncidentRules,
    ports: Ports,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Engine {
    /// Restores every shard from the store, then starts it: the standalone
    /// engine, which owns all shards.
    pub async fn start(
        settings: EngineSettings,
        routing: RoutingTree,
        policies: EscalationPolicies,
        ports: Ports,
    ) -> Result<(Engine, RestoreReport), EngineError> {
        let started = Instant::now();
        let engine = Engine::without_shards(settings, routing, policies, ports);
        // Every shard's store reads in flight at once: restore time is then
        // bound by the slowest shard, not the sum of all.
        let loading: Vec<_> = (0..engine.shard_count())
            .map(|shard| {
                let store = engine.ports.store.clone();
                tokio::spawn(async move { store.load_shard(shard).await })
            })
            .collect();
        // Each shard decodes and starts as soon as its own read is done, all
        // at once: a shard's start fills its maps on one core, so starting
        // them one after the other left the other cores idle.
        let engine_ref = &engine;
        let starts = loading
            .into_iter()
            .enumerate()
            .map(|(shard, loaded)| async move {
                let snapshot = loaded.await.map_err(|e| EngineError::Spawn {
                    shard,
                    message: format!("restore task failed: {e}"),
                })?;
                let snapshot = snapshot.map_err(|source| EngineError::Restore { shard, source })?;
                engine_ref.spawn_shard(shard, snapshot).await
            });
        let mut report = RestoreReport::default();
        for started in futures::future::join_all(starts).await {
            let (_, shard_report) = started?;
            report.incidents += shard_report.incidents;
            report.rejected.extend(shard_report.rejected);
        }
        report.duration = started.elapsed();
        Ok((engine, report))
    }

    /// What a manual incident needs before it goes anywhere.
    pub fn validate_new_incident(request: &NewIncident) -> Result<(), CommandError> {
        if request.title.trim().is_empty() {
            return Err(CommandError::Invalid {
                field: "title",
                message: "must not be blank".into(),
            });
        }
        Ok(())
    }

    /// An engine that owns no shard yet: a cluster member, which acquires
    /// shards as they are assigned to it.
    pub fn without_shards(
        settings: EngineSettings,
        routing: RoutingTree,
        policies: EscalationPolicies,
        ports: Ports,
    ) -> Engine {
        let shard_count = settings.shard_count();
        Engine {
            routing: Arc::new(routing),
            slots: (0..shard_count).map(|_| RwLock::new(None)).collect(),
            loads: (0..shard_count)
                .map(|shard| Arc::new(ShardLoad::new(shard, settings.shard_capacity)))
                .collect(),
            read_model: Arc::new(ReadModel::default()),
            rules: IncidentRules::new(policies, &settings),
            settings,
            clock: ports.clock.clone(),
            ports,
        }
    }

    /// Takes ownership of `shard`: claims it in the store (fencing out the
    /// previous owner), restores its incidents and starts it. Returns how far
    /// each source was applied, so the caller resumes reading after it.
    pub async fn acquire_shard(
        &self,
        shard: usize,
    ) -> Result<(BTreeMap<String, i64>, RestoreReport), EngineError> {
        self.check_shard(shard)?;
        // Owning it already means this replica's memory may be ahead of the
        // store; a fresh restore is the one state every replica agrees on.
        self.release_shard(shard).await;
        let snapshot = self
            .ports
            .store
            .load_shard(shard)
            .await
            .map_err(|source| EngineError::Restore { shard, source })?;
        self.spawn_shard(shard, snapshot).await
    }

    /// Stores what `shard` has pending and stops it; its incidents leave this
    /// replica's read model. Does nothing when the shard is not owned here.
    pub async fn release_shard(&self, shard: usize) {
        let Some(actor) = self
            .slots
            .get(shard)
            .and_then(|slot| slot.write().expect("shard slot lock").take())
        else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if actor.cast(ShardMsg::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Whether this replica runs `shard` now.
    pub fn owns(&self, shard: usize) -> bool {
        self.shard_ref(shard).is_some()
    }

    async fn spawn_shard(
        &self,
        shard: usize,
        snapshot: ShardSnapshot,
    ) -> Result<(BTreeMap<String, i64>, RestoreReport), EngineError> {
        let started = Instant::now();
        let at = RestoreAt {
            now: self.clock.now(),
            redeliver_within: self.settings.redeliver_escalations_within,
        };
        let (restored, rejected) = decode_shard(shard, snapshot.incidents, at).await;
        for bad in &rejected {
            // Best effort: a failure here only means it is skipped again next time.
            if let Err(e) = self
                .ports
                .store
                .quarantine(shard, &bad.key, &bad.reason)
                .await
            {
                tracing::warn!(shard, key = %bad.key, error = %e, "could not move an undecodable snapshot aside");
            }
        }
        let report = RestoreReport {
            incidents: restored.len(),
            rejected,
            duration: started.elapsed(),
        };
        telemetry::restore_done(shard, report.duration, report.incidents);
        let load = self.loads[shard].clone();
        load.reset();
        let context = Arc::new(ShardContext {
            shard,
            settings: self.settings.clone(),
            rules: self.rules.clone(),
            clock: self.ports.clock.clone(),
            sink: self.ports.sink.clone(),
            store: self.ports.store.clone(),
            read_model: self.read_model.clone(),
            load,
        });
        let args = ShardArgs {
            context,
            restored,
            offsets: snapshot.offsets.clone(),
        };
        let (actor, _) = Actor::spawn(None, ShardSupervisor, args)
            .await
            .map_err(|e| EngineError::Spawn {
                shard,
                message: e.to_string(),
            })?;
        *self.slots[shard].write().expect("shard slot lock") = Some(actor);
        Ok((snapshot.offsets, report))
    }

    fn check_shard(&self, shard: usize) -> Result<(), EngineError> {
        if shard < self.slots.len() {
            Ok(())
        } else {
            Err(EngineError::NoSuchShard {
                shard,
                shards: self.slots.len(),
            })
        }
    }

    /// The shard's actor while it runs: a shard that stopped by itself
    /// (fenced by a newer owner) is not owned any more, though its slot is
    /// only emptied by the next acquire or release.
    fn shard_ref(&self, shard: usize) -> Option<ActorRef<ShardMsg>> {
        self.slots
            .get(shard)
            .and_then(|slot| slot.read().expect("shard slot lock").clone())
            .filter(|actor| {
                !matches!(
                    actor.get_status(),
                    ActorStatus::Stopping | ActorStatus::Stopped
                )
            })
    }

    /// Casts to a shard this replica owns.
    fn cast(&self, shard: usize, message: ShardMsg) -> Result<(), EngineError> {
        let actor = self
            .shard_ref(shard)
            .ok_or(EngineError::NotOwned { shard })?;
        actor
            .cast(message)
            .map_err(|_| EngineError::NotOwned { shard })
    }

    /// Routes and applies alerts; returns once their effect is stored.
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<Submitted, EngineError> {
        self.submit_from(alerts, Progress::default()).await
    }

    /// Like `submit`, with where the alerts were read: the stream records
    /// the incidents they open derive their ids from, and how far a
    /// position's source has been applied, so a replay of the same offsets
    /// changes nothing.
    pub async fn submit_from(
        &self,
        alerts: Vec<Alert>,
        progress: Progress,
    ) -> Result<Submitted, EngineError> {
        let count = alerts.len();
        let per_shard = self.route_by_shard(alerts, &progress);
        let targets = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, alerts)| !alerts.is_empty())
            .collect();
        self.apply(targets, progress).await?;
        Ok(Submitted { alerts: count })
    }

    /// Applies, on `shard` only, the routes of `alerts` that belong to it:
    /// a cluster's shard consumer, whose partition was filled with the
    /// alerts of this shard's groups. The progress is recorded even when no
    /// route lands here, so the shard's applied offsets keep up.
    pub async fn submit_to_shard(
        &self,
        shard: usize,
        alerts: Vec<Alert>,
        progress: Progress,
    ) -> Result<Submitted, EngineError> {
        let count = alerts.len();
        self.dispatch_to_shard(shard, alerts, progress)?
            .stored()
            .await?;
        Ok(Submitted { alerts: count })
    }

    /// Like `submit_to_shard`, but returns as soon as the shard has the
    /// alerts (their incidents apply them, their events go out): the
    /// returned `Stored` resolves once their effect is stored. A consumer
    /// can hand over its next batch meanwhile instead of waiting a group
    /// commit per batch; the shard stores in order, so the waits of one
    /// shard resolve in the order of their dispatch.
    pub fn dispatch_to_shard(
        &self,
        shard: usize,
        alerts: Vec<Alert>,
        progress: Progress,
    ) -> Result<Stored, EngineError> {
        self.check_shard(shard)?;
        let mut per_shard = self.route_by_shard(alerts, &progress);
        let mine = std::mem::take(&mut per_shard[shard]);
        self.dispatch(vec![(shard, mine)], progress)
    }

    /// The distinct shards `alert`'s routes land on, in route order.
    pub fn shards_of(&self, alert: &Alert) -> Vec<usize> {
        let mut shards = Vec::new();
        for route in self.routing.route(alert) {
            let shard = shard_of(&route.tenant, &route.group_key, self.slots.len());
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        shards
    }

    /// The shard a manual incident's group lives on.
    pub fn shard_of_new_incident(&self, tenant: &str, id: IncidentId) -> usize {
        shard_of(tenant, &manual_group_key(id), self.slots.len())
    }

    fn route_by_shard(&self, alerts: Vec<Alert>, progress: &Progress) -> Vec<ShardAlerts> {
        let mut split = BatchSplit::new(self.slots.len(), alerts.len());
        let mut records = progress.records.iter().peekable();
        let mut record = None;
        for (i, alert) in alerts.into_iter().enumerate() {
            while let Some(next) = records.next_if(|r| r.first_alert <= i) {
                record = next.opening;
            }
            let routes = self.routing.route(&alert);
            let last = routes.len().saturating_sub(1);
            let mut alert = Some(alert);
            for (i, route) in routes.into_iter().enumerate() {
                // Extra routes (through `continue`) get copies; the last the original.
                let alert = if i == last {
                    alert.take()
                } else {
                    alert.clone()
                };
                split.push(RoutedAlert {
                    alert: alert.expect("only the last route takes the alert"),
                    tenant: route.tenant,
                    group_key: route.group_key,
                    route: route.settings,
                    record,
                });
            }
        }
        split.finish()
    }

    /// Hands each shard its alerts and waits until all are stored.
    async fn apply(
        &self,
        targets: Vec<(usize, ShardAlerts)>,
        progress: Progress,
    ) -> Result<(), EngineError> {
        self.dispatch(targets, progress)?.stored().await
    }

    /// Hands each shard its alerts; the answer waits until all are stored.
    fn dispatch(
        &self,
        targets: Vec<(usize, ShardAlerts)>,
        progress: Progress,
    ) -> Result<Stored, EngineError> {
        let received = Instant::now();
        self.check_sink_room()?;
        self.reserve(&targets)?;
        let mut waits = Vec::new();
        let mut targets = targets.into_iter();
        while let Some((shard, alerts)) = targets.next() {
            let (tx, rx) = oneshot::channel();
            let taken = alerts.len();
            let message = ShardMsg::Alerts {
                alerts,
                progress: progress.clone(),
                durable: Some(tx),
                received,
            };
            if let Err(e) = self.cast(shard, message) {
                // Not handed over: give back this and every later reservation.
                self.loads[shard].release(taken);
                for (later, alerts) in targets {
                    self.loads[later].release(alerts.len());
                }
                return Err(e);
            }
            waits.push((shard, rx));
        }
        Ok(Stored { waits })
    }

    /// Why new alerts and commands are refused now, if they are: the
    /// event sink holds as many undelivered events as it may.
    pub fn sink_backlog_full(&self) -> Option<String> {
        self.ports.sink.backlog_full()
    }

    /// Refuses new changes while the event sink is at its bound.
    fn check_sink_room(&self) -> Result<(), EngineError> {
        match self.sink_backlog_full() {
            Some(reason) => Err(EngineError::Retry(reason)),
            None => Ok(()),
        }
    }

    /// Reserves room on every shard a batch touches, or none at all.
    fn reserve(&self, targets: &[(usize, ShardAlerts)]) -> Result<(), EngineError> {
        for (i, (shard, alerts)) in targets.iter().enumerate() {
            let load = &self.loads[*shard];
            if load.try_reserve(alerts.len()) {
                continue;
            }
            for (earlier, taken) in targets.iter().take(i) {
                self.loads[*earlier].release(taken.len());
            }
            return Err(EngineError::Busy {
                shard: *shard,
                pending: load.pending(),
                capacity: load.capacity,
            });
        }
        Ok(())
    }

    /// Applies a command; returns the incident after it, once stored.
    pub async fn command(
        &self,
        id: IncidentId,
        command: Command,
        actor: &str,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        let shard = self.shard_of_incident(id)?;
        self.command_on(shard, id, command, actor, None).await
    }

    /// Applies a command on the shard that holds the incident; with a
    /// position, a replay of it changes nothing.
    pub async fn command_on(
        &self,
        shard: usize,
        id: IncidentId,
        command: Command,
        actor: &str,
        position: Option<SourcePosition>,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        let (tx, rx) = oneshot::channel();
        let (durable_tx, durable) = oneshot::channel();
        let message = ShardMsg::Command {
            id,
            command,
            actor: actor.to_string(),
            position,
            reply: tx,
            durable: durable_tx,
        };
        self.ask_durable(shard, message, rx, durable).await
    }

    /// Opens an incident by hand; returns it once stored.
    pub async fn create_incident(
        &self,
        request: NewIncident,
        actor: &str,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        let id = IncidentId::new(self.clock.now());
        self.create_incident_as(id, request, actor, None).await
    }

    /// Opens an incident by hand under an id chosen by the caller (a cluster
    /// picks it before the request travels to the owning shard).
    pub async fn create_incident_as(
        &self,
        id: IncidentId,
        request: NewIncident,
        actor: &str,
        position: Option<SourcePosition>,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        Engine::validate_new_incident(&request)?;
        let shard = self.shard_of_new_incident(&request.tenant, id);
        let (tx, rx) = oneshot::channel();
        let (durable_tx, durable) = oneshot::channel();
        let message = ShardMsg::Create {
            id,
            request,
            actor: actor.to_string(),
            position,
            reply: tx,
            durable: durable_tx,
        };
        self.ask_durable(shard, message, rx, durable).await
    }

    /// Sends a change to a shard and answers once it is stored.
    async fn ask_durable(
        &self,
        shard: usize,
        message: ShardMsg,
        reply: oneshot::Receiver<Result<Arc<IncidentSummary>, CommandError>>,
        durable: oneshot::Receiver<Result<(), EngineError>>,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        let unavailable = |e: EngineError| CommandError::Unavailable(e.to_string());
        self.check_sink_room().map_err(unavailable)?;
        let summary = self.ask(shard, message, reply).await??;
        durable
            .await
            .map_err(|_| unavailable(EngineError::NotOwned { shard }))?
            .map_err(unavailable)?;
        Ok(summary)
    }

    /// The full incident, timeline included.
    pub async fn incident(&self, id: IncidentId) -> Result<Incident, CommandError> {
        let shard = self.shard_of_incident(id)?;
        let (tx, rx) = oneshot::channel();
        self.ask(shard, ShardMsg::Get { id, reply: tx }, rx)
            .await?
            .ok_or(CommandError::NotFound(id))
    }

    /// The incident `alert` would join now (through the first of its routes
    /// that has one, on a shard owned here), without applying it.
    pub async fn incident_for(&self, alert: &Alert) -> Option<IncidentId> {
        for route in self.routing.route(alert) {
            let shard = shard_of(&route.tenant, &route.group_key, self.slots.len());
            let (tx, rx) = oneshot::channel();
            let message = ShardMsg::CurrentOf {
                tenant: route.tenant,
                group_key: route.group_key,
                reply: tx,
            };
            if let Ok(Some(id)) = self.ask(shard, message, rx).await {
                return Some(id);
            }
        }
        None
    }

    /// Waits until everything every owned shard took so far is stored.
    pub async fn sync(&self) -> Result<(), EngineError> {
        for shard in 0..self.slots.len() {
            if self.owns(shard) {
                self.sync_shard(shard).await?;
            }
        }
        Ok(())
    }

    async fn sync_shard(&self, shard: usize) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.cast(shard, ShardMsg::Sync(tx))?;
        rx.await.map_err(|_| EngineError::NotOwned { shard })?
    }

    async fn ask<T>(
        &self,
        shard: usize,
        message: ShardMsg,
        reply: oneshot::Receiver<T>,
    ) -> Result<T, CommandError> {
        let unavailable = |e: EngineError| CommandError::Unavailable(e.to_string());
        self.cast(shard, message).map_err(unavailable)?;
        reply
            .await
            .map_err(|_| unavailable(EngineError::NotOwned { shard }))
    }

    fn shard_of_incident(&self, id: IncidentId) -> Result<usize, CommandError> {
        let summary = self.read_model.get(&id).ok_or(CommandError::NotFound(id))?;
        Ok(self.shard_of_summary(&summary))
    }

    /// The shard an incident lives on, from its summary.
    pub fn shard_of_summary(&self, summary: &IncidentSummary) -> usize {
        shard_of(&summary.tenant, &summary.group_key, self.slots.len())
    }

    /// Latest summaries of all live incidents.
    pub fn read_model(&self) -> &Arc<ReadModel> {
        &self.read_model
    }

    /// How full each shard is, for sources that pause and for readiness.
    pub fn loads(&self) -> &[Arc<ShardLoad>] {
        &self.loads
    }

    pub fn routing(&self) -> &RoutingTree {
        &self.routing
    }

    pub fn shard_count(&self) -> usize {
        self.slots.len()
    }

    /// Stores what is pending and stops every shard and incident actor.
    pub async fn shutdown(&self) {
        // All at once: each shard's final flush runs while the others do theirs.
        let mut waits = Vec::new();
        for slot in &self.slots {
            let Some(actor) = slot.write().expect("shard slot lock").take() else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            if actor.cast(ShardMsg::Stop(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    #[cfg(test)]
    pub(crate) async fn resident_incidents(&self) -> Vec<IncidentId> {
        let mut resident = Vec::new();
        for shard in 0..self.slots.len() {
            let (tx, rx) = oneshot::channel();
            self.cast(shard, ShardMsg::Resident(tx)).unwrap();
            resident.extend(rx.await.unwrap());
        }
        resident
    }

    #[cfg(test)]
    pub(crate) fn crash_incident(&self, id: IncidentId) {
        if let Ok(shard) = self.shard_of_incident(id) {
            let _ = self.cast(shard, ShardMsg::CrashIncident(id));
        }
    }
}
