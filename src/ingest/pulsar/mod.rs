//! Alerts from Apache Pulsar topics: one of ingest's sources beside HTTP,
//! hence its place under `ingest/` (incident events *to* Pulsar are a sink,
//! in `sinks/pulsar.rs`). Each source topic has its own consumer task on
//! one shared subscription (Key_Shared or Failover): a message is decoded
//! by its topic's format, poison goes to the dead-letter topic, and the
//! rest goes through `Intake`, so it works standalone and in a Kafka
//! cluster alike. A message is acknowledged only once its alerts are
//! durable; one that cannot be stored is negatively acknowledged and
//! redelivered. `batch` is what a batch asks of intake, `dead_letter` the
//! copy of a poison message, `topic_source` the consumer loop.

mod batch;
mod config;
mod dead_letter;
mod telemetry;
mod topic_source;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{PulsarSource, PulsarSourceConfig, PulsarSubscriptionType};

use super::PagerDutyKeys;
use crate::intake::Intake;
use topic_source::{Shared, TopicSource};

/// The running Pulsar sources.
pub struct PulsarSources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PulsarSources {
    /// Starts one consumer task per source topic. They connect in the
    /// background and keep retrying, so a broker that is down at start
    /// delays Pulsar alerts but not the service.
    pub fn start(
        config: &PulsarSourceConfig,
        intake: Intake,
        pagerduty: Arc<PagerDutyKeys>,
        default_tenant: String,
    ) -> PulsarSources {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: config.clone(),
            intake,
            pagerduty,
            default_tenant,
        });
        let tasks = config
            .sources
            .iter()
            .map(|source| {
                let topic_source = TopicSource {
                    shared: shared.clone(),
                    source: source.clone(),
                    stop: stopped.clone(),
                };
                tokio::spawn(topic_source.run())
            })
            .collect();
        PulsarSources { stop, tasks }
    }

    /// Stops taking messages, finishes (stores and acknowledges) the
    /// batches in flight and closes the consumers, waiting at most `bound`;
    /// a batch cut off then is redelivered later, never lost.
    pub async fn stop(self, bound: Duration) {
        self.stop.send_replace(true);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let finishing = futures::future::join_all(self.tasks);
        if tokio::time::timeout(bound, finishing).await.is_err() {
            tracing::warn!(
                ?bound,
                "pulsar sources did not stop in time; their unacknowledged messages are redelivered"
            );
            aborts.iter().for_each(|a| a.abort());
        }
    }
}
