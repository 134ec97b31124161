use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::escalation::{EscalationPolicies, EscalationPolicy};
use crate::incident::IncidentRules;
use crate::model::{
    Alert, Command, CommandError, Incident, IncidentId, IncidentSummary, NewIncident,
};
use crate::ports::{Clock, EventSink, SnapshotStore, SourcePosition, StoreError};
use crate::read_model::ReadModel;
use crate::restore::{decode_shard, RejectedSnapshot};
use crate::routing::{RouteConfig, RoutingTree};
use crate::settings::EngineSettings;
use crate::shard::{
    shard_of, RoutedAlert, ShardArgs, ShardContext, ShardLoad, ShardMsg, ShardSupervisor,
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
    #[error("restoring shard {shard}: {source}")]
    Restore { shard: usize, source: StoreError },
    #[error("shard {shard} could not start: {message}")]
    Spawn { shard: usize, message: String },
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

/// A running engine: N shards, each supervising its incident actors.
pub struct Engine {
    routing: Arc<RoutingTree>,
    shards: Vec<ActorRef<ShardMsg>>,
    loads: Vec<Arc<ShardLoad>>,
    read_model: Arc<ReadModel>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Engine {
    /// Restores every shard from the store, then starts it.
    pub async fn start(
        settings: EngineSettings,
        routing: RoutingTree,
        policies: EscalationPolicies,
        ports: Ports,
    ) -> Result<(Engine, RestoreReport), EngineError> {
        let started = Instant::now();
        let shard_count = settings.shard_count();
        let rules = IncidentRules::new(policies, &settings);
        let read_model = Arc::new(ReadModel::default());
        let mut report = RestoreReport::default();
        let mut shards = Vec::with_capacity(shard_count);
        let mut loads = Vec::with_capacity(shard_count);
        // Every shard's store reads in flight at once: restore time is then
        // bound by the slowest shard, not the sum of all.
        let loading: Vec<_> = (0..shard_count)
            .map(|shard| {
                let store = ports.store.clone();
                tokio::spawn(async move { (Instant::now(), store.load_shard(shard).await) })
            })
            .collect();
        for (shard, loaded) in loading.into_iter().enumerate() {
            let (shard_started, snapshot) = loaded.await.map_err(|e| EngineError::Spawn {
                shard,
                message: format!("restore task failed: {e}"),
            })?;
            let snapshot = snapshot.map_err(|source| EngineError::Restore { shard, source })?;
            let (restored, rejected) = decode_shard(shard, snapshot.incidents).await;
            for bad in &rejected {
                // Best effort: a failure here only means it is skipped again next time.
                if let Err(e) = ports.store.quarantine(shard, &bad.key, &bad.reason).await {
                    tracing::warn!(shard, key = %bad.key, error = %e, "could not move an undecodable snapshot aside");
                }
            }
            report.rejected.extend(rejected);
            telemetry::restore_done(shard, shard_started.elapsed(), restored.len());
            report.incidents += restored.len();
            let load = Arc::new(ShardLoad::new(shard, settings.shard_capacity));
            let context = Arc::new(ShardContext {
                shard,
                settings: settings.clone(),
                rules: rules.clone(),
                clock: ports.clock.clone(),
                sink: ports.sink.clone(),
                store: ports.store.clone(),
                read_model: read_model.clone(),
                load: load.clone(),
            });
            let args = ShardArgs {
                context,
                restored,
                offsets: snapshot.offsets,
            };
            let (actor, _) = Actor::spawn(None, ShardSupervisor, args)
                .await
                .map_err(|e| EngineError::Spawn {
                    shard,
                    message: e.to_string(),
                })?;
            shards.push(actor);
            loads.push(load);
        }
        report.duration = started.elapsed();
        let engine = Engine {
            routing: Arc::new(routing),
            shards,
            loads,
            read_model,
            clock: ports.clock,
        };
        Ok((engine, report))
    }

    /// Routes and applies alerts; returns once their effect is stored.
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<Submitted, EngineError> {
        self.submit_from(alerts, None).await
    }

    /// Like `submit`, recording how far `position`'s source has been applied,
    /// so a replay of the same offsets changes nothing.
    pub async fn submit_from(
        &self,
        alerts: Vec<Alert>,
        position: Option<SourcePosition>,
    ) -> Result<Submitted, EngineError> {
        let received = Instant::now();
        let count = alerts.len();
        let mut per_shard: Vec<Vec<RoutedAlert>> =
            (0..self.shards.len()).map(|_| Vec::new()).collect();
        for alert in alerts {
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
                let shard = shard_of(&route.tenant, &route.group_key, self.shards.len());
                per_shard[shard].push(RoutedAlert {
                    alert: alert.expect("only the last route takes the alert"),
                    tenant: route.tenant,
                    group_key: route.group_key,
                    route: route.settings,
                });
            }
        }
        self.reserve(&per_shard)?;
        let mut waits = Vec::new();
        for (shard, alerts) in per_shard.into_iter().enumerate() {
            if alerts.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let message = ShardMsg::Alerts {
                alerts,
                position: position.clone(),
                durable: Some(tx),
                received,
            };
            if self.shards[shard].cast(message).is_err() {
                return Err(EngineError::ShuttingDown);
            }
            waits.push(rx);
        }
        for wait in waits {
            wait.await.map_err(|_| EngineError::ShuttingDown)??;
        }
        Ok(Submitted { alerts: count })
    }

    /// Reserves room on every shard a batch touches, or none at all.
    fn reserve(&self, per_shard: &[Vec<RoutedAlert>]) -> Result<(), EngineError> {
        for (shard, alerts) in per_shard.iter().enumerate() {
            if alerts.is_empty() || self.loads[shard].try_reserve(alerts.len()) {
                continue;
            }
            for (earlier, taken) in per_shard.iter().enumerate().take(shard) {
                self.loads[earlier].release(taken.len());
            }
            let load = &self.loads[shard];
            return Err(EngineError::Busy {
                shard,
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
        let (tx, rx) = oneshot::channel();
        let message = ShardMsg::Command {
            id,
            command,
            actor: actor.to_string(),
            reply: tx,
        };
        self.ask_durable(shard, message, rx).await
    }

    /// Opens an incident by hand; returns it once stored.
    pub async fn create_incident(
        &self,
        request: NewIncident,
        actor: &str,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        if request.title.trim().is_empty() {
            return Err(CommandError::Invalid {
                field: "title",
                message: "must not be blank".into(),
            });
        }
        let id = IncidentId::new(self.clock.now());
        let shard = shard_of(&request.tenant, &format!("manual:{id}"), self.shards.len());
        let (tx, rx) = oneshot::channel();
        let message = ShardMsg::Create {
            id,
            request,
            actor: actor.to_string(),
            reply: tx,
        };
        self.ask_durable(shard, message, rx).await
    }

    /// Sends a change to a shard and answers once it is stored.
    async fn ask_durable(
        &self,
        shard: usize,
        message: ShardMsg,
        reply: oneshot::Receiver<Result<Arc<IncidentSummary>, CommandError>>,
    ) -> Result<Arc<IncidentSummary>, CommandError> {
        let summary = self.ask(shard, message, reply).await??;
        self.sync_shard(shard)
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?;
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
    /// that has one), without applying it.
    pub async fn incident_for(&self, alert: &Alert) -> Option<IncidentId> {
        for route in self.routing.route(alert) {
            let shard = shard_of(&route.tenant, &route.group_key, self.shards.len());
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

    /// Waits until everything every shard took so far is stored.
    pub async fn sync(&self) -> Result<(), EngineError> {
        for shard in 0..self.shards.len() {
            self.sync_shard(shard).await?;
        }
        Ok(())
    }

    async fn sync_shard(&self, shard: usize) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.shards[shard]
            .cast(ShardMsg::Sync(tx))
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    async fn ask<T>(
        &self,
        shard: usize,
        message: ShardMsg,
        reply: oneshot::Receiver<T>,
    ) -> Result<T, CommandError> {
        let unavailable = || CommandError::Unavailable("the engine is shutting down".into());
        self.shards[shard]
            .cast(message)
            .map_err(|_| unavailable())?;
        reply.await.map_err(|_| unavailable())
    }

    fn shard_of_incident(&self, id: IncidentId) -> Result<usize, CommandError> {
        let summary = self.read_model.get(&id).ok_or(CommandError::NotFound(id))?;
        Ok(shard_of(
            &summary.tenant,
            &summary.group_key,
            self.shards.len(),
        ))
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
        self.shards.len()
    }

    /// Stores what is pending and stops every shard and incident actor.
    pub async fn shutdown(&self) {
        let mut waits = Vec::new();
        for shard in &self.shards {
            let (tx, rx) = oneshot::channel();
            if shard.cast(ShardMsg::Stop(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn crash_incident(&self, id: IncidentId) {
        if let Ok(shard) = self.shard_of_incident(id) {
            let _ = self.shards[shard].cast(ShardMsg::CrashIncident(id));
        }
    }
}
