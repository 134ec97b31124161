use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use incidentd_actors::model::IncidentSummary;
use incidentd_actors::ports::StoreError;
use incidentd_actors::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::bus::EventBus;
use crate::config::Config;
use crate::ingest::PagerDutyKeys;
use crate::intake::Intake;
use crate::store::RedisStore;
use crate::subscriptions::Subscriptions;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Where alerts and commands go: this engine, or the Kafka cluster.
    pub intake: Intake,
    /// PagerDuty triggers, for their later acknowledge and resolve events.
    pub pagerduty: Arc<PagerDutyKeys>,
    pub bus: Arc<EventBus>,
    pub subscriptions: Arc<Subscriptions>,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub shutting_down: Arc<AtomicBool>,
    pub directory: Directory,
}

/// Where incident lists come from.
#[derive(Clone)]
pub enum Directory {
    /// This process's read model: it owns every shard.
    Local,
    /// The summaries every replica's shards stored in Redis, so any replica
    /// lists them all (lagging the owners by about one group commit).
    Redis(Arc<RedisStore>),
}

impl AppState {
    /// Every live incident's summary, for listing.
    pub async fn incident_summaries(&self) -> Result<Vec<Arc<IncidentSummary>>, StoreError> {
        match &self.directory {
            Directory::Local => Ok(self.engine.read_model().all()),
            Directory::Redis(store) => store.summaries(self.engine.shard_count()).await,
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
