//! Cluster mode over Kafka: replicas share the shards through one consumer
//! group (partition N of the keyed topic is shard N), alert topics are
//! re-keyed onto that topic, and the service's own ingest and commands are
//! produced to it, so everything reaches the owning shard in order and
//! survives a replica's death. See `group` for hand-over, `rekey` for the
//! repartition step, `record` for the keyed topic's format.

mod client;
mod config;
mod group;
mod pending;
mod producer;
mod record;
mod rekey;
mod source;
mod telemetry;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use incidentd_actors::Engine;

pub use client::{producer_settings, with_options};
pub use config::{KafkaConfig, KafkaSource};
pub use pending::{Outcome, PendingReplies};
pub use producer::{Keyed, KeyedProducer};
pub use record::KeyedRecord;

use crate::ingest::PagerDutyKeys;
use worker::WorkerShared;

/// The running Kafka side of a replica.
pub struct Cluster {
    pub producer: Arc<KeyedProducer>,
    pub pending: Arc<PendingReplies>,
    shutdown: Arc<AtomicBool>,
    group: std::thread::JoinHandle<()>,
    rekey: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// Checks the keyed topics against the shard count, then joins the group.
    pub fn start(
        config: &KafkaConfig,
        engine: Arc<Engine>,
        pagerduty: Arc<PagerDutyKeys>,
        default_tenant: String,
    ) -> Result<Cluster, String> {
        client::check_keyed_topics(config, engine.shard_count())?;
        let producer = Arc::new(KeyedProducer::new(config)?);
        let pending = Arc::new(PendingReplies::default());
        let shared = Arc::new(WorkerShared {
            engine,
            producer: producer.clone(),
            pending: pending.clone(),
            pagerduty,
            default_tenant,
            max_batch: config.max_batch,
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let group = group::start_group(config, shared.clone(), shutdown.clone())?;
        let rekey = rekey::start_rekey(config, shared, shutdown.clone())?;
        Ok(Cluster {
            producer,
            pending,
            shutdown,
            group,
            rekey,
        })
    }

    /// Stops reading, hands every shard over (stored, offsets committed) and
    /// leaves the group, waiting at most `bound`.
    pub async fn stop(self, bound: Duration) {
        self.shutdown.store(true, Ordering::Relaxed);
        let group = self.group;
        let leaving = async {
            if let Some(rekey) = self.rekey {
                let _ = rekey.await;
            }
            let _ = tokio::task::spawn_blocking(move || group.join()).await;
        };
        if tokio::time::timeout(bound, leaving).await.is_err() {
            tracing::error!(
                ?bound,
                "leaving the Kafka group took too long; stopping anyway"
            );
        }
    }
}
