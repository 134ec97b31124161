//! Where accepted input goes. Standalone, straight into this process's
//! engine; in a Kafka cluster, onto the keyed topic's partition of the
//! owning shard, so it reaches that shard on whichever replica runs it, in
//! order with the shard's alerts, and survives a replica's death.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use incidentd_actors::model::{
    Alert, Command, CommandError, IncidentId, IncidentSummary, NewIncident, Timestamp,
};
use incidentd_actors::ports::{AlertRecord, Progress};
use incidentd_actors::{Engine, EngineError};
use serde::Serialize;
use ulid::Ulid;

use crate::ingest::SourceInput;
use crate::kafka::{Keyed, KeyedProducer, KeyedRecord, PendingReplies};
use crate::store::RedisStore;

#[derive(Clone)]
pub struct Intake {
    engine: Arc<Engine>,
    kafka: Option<Arc<KafkaIntake>>,
}

/// The cluster's way in.
pub struct KafkaIntake {
    pub producer: Arc<KeyedProducer>,
    pub pending: Arc<PendingReplies>,
    /// Finds the shard of an incident this replica does not own.
    pub directory: Arc<RedisStore>,
    /// How long a command waits for its outcome when its shard runs here.
    pub wait: Duration,
}

/// What became of a command.
#[derive(Debug)]
pub enum Applied {
    /// Applied and stored: the incident after it.
    Done(Arc<IncidentSummary>),
    /// Queued on the owning shard's partition; another replica (or a
    /// slower-than-usual shard here) applies it.
    Queued { incident: IncidentId },
}

/// The answer to a command queued for another replica (HTTP 202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedBody {
    /// Always "accepted".
    pub status: &'static str,
    #[schema(value_type = String)]
    pub incident: IncidentId,
    pub message: &'static str,
}

impl IntoResponse for Applied {
    fn into_response(self) -> Response {
        match self {
            Applied::Done(summary) => Json(summary).into_response(),
            Applied::Queued { incident } => (
                StatusCode::ACCEPTED,
                Json(QueuedBody {
                    status: "accepted",
                    incident,
                    message: "queued for the replica that owns the incident, in order with its alerts; read the incident to see the change",
                }),
            )
                .into_response(),
        }
    }
}

impl Intake {
    pub fn standalone(engine: Arc<Engine>) -> Intake {
        Intake {
            engine,
            kafka: None,
        }
    }

    pub fn cluster(engine: Arc<Engine>, kafka: KafkaIntake) -> Intake {
        Intake {
            engine,
            kafka: Some(Arc::new(kafka)),
        }
    }

    /// Takes alerts; returns once they are durable (stored in a snapshot,
    /// or acknowledged by every in-sync Kafka replica).
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<(), EngineError> {
        self.submit_read(alerts, Vec::new()).await
    }

    /// Like `submit`, for alerts read from stream `records`. Standalone,
    /// the incidents they open derive their ids from those records; in a
    /// cluster from the keyed topic's records, which every alert goes
    /// through.
    pub async fn submit_read(
        &self,
        alerts: Vec<Alert>,
        records: Vec<AlertRecord>,
    ) -> Result<(), EngineError> {
        match &self.kafka {
            None => {
                let progress = Progress {
                    records,
                    ..Progress::default()
                };
                self.engine.submit_from(alerts, progress).await.map(|_| ())
            }
            Some(kafka) => {
                let input = SourceInput {
                    alerts,
                    ..SourceInput::default()
                };
                kafka
                    .producer
                    .send_all(input.into_records(&self.engine, None, None))
                    .await
                    .map_err(EngineError::NotDurable)
            }
        }
    }

    pub async fn command(
        &self,
        id: IncidentId,
        command: Command,
        actor: &str,
    ) -> Result<Applied, CommandError> {
        let Some(kafka) = &self.kafka else {
            return self
                .engine
                .command(id, command, actor)
                .await
                .map(Applied::Done);
        };
        let shard = self.shard_of(kafka, id).await?;
        let request = Ulid::new();
        let record = KeyedRecord::Command {
            incident: id,
            command,
            actor: actor.to_string(),
            request,
        };
        self.send_and_wait(kafka, shard, id, request, record).await
    }

    pub async fn create(&self, new: NewIncident, actor: &str) -> Result<Applied, CommandError> {
        let Some(kafka) = &self.kafka else {
            return self
                .engine
                .create_incident(new, actor)
                .await
                .map(Applied::Done);
        };
        Engine::validate_new_incident(&new)?;
        let id = IncidentId::new(Timestamp::from_datetime(chrono::Utc::now()));
        let shard = self.engine.shard_of_new_incident(&new.tenant, id);
        let request = Ulid::new();
        let record = KeyedRecord::Create {
            incident: id,
            new,
            actor: actor.to_string(),
            request,
        };
        self.send_and_wait(kafka, shard, id, request, record).await
    }

    /// Acknowledges whatever incident `probe`'s group has now. False when
    /// (standalone) there is none.
    pub async fn acknowledge_group(&self, probe: Alert, actor: &str) -> Result<bool, CommandError> {
        let Some(kafka) = &self.kafka else {
            let Some(id) = self.engine.incident_for(&probe).await else {
                return Ok(false);
            };
            return match self.engine.command(id, Command::Acknowledge, actor).await {
                // Acknowledging twice is what PagerDuty clients do on retry.
                Ok(_) | Err(CommandError::NotApplicable { .. }) => Ok(true),
                Err(e) => Err(e),
            };
        };
        let input = SourceInput {
            acknowledges: vec![(probe, actor.to_string())],
            ..SourceInput::default()
        };
        kafka
            .producer
            .send_all(input.into_records(&self.engine, None, None))
            .await
            .map_err(CommandError::Unavailable)?;
        Ok(true)
    }

    async fn shard_of(&self, kafka: &KafkaIntake, id: IncidentId) -> Result<usize, CommandError> {
        if let Some(summary) = self.engine.read_model().get(&id) {
            return Ok(self.engine.shard_of_summary(&summary));
        }
        kafka
            .directory
            .shard_of_incident(id, self.engine.shard_count())
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?
            .ok_or(CommandError::NotFound(id))
    }

    async fn send_and_wait(
        &self,
        kafka: &KafkaIntake,
        shard: usize,
        id: IncidentId,
        request: Ulid,
        record: KeyedRecord,
    ) -> Result<Applied, CommandError> {
        let outcome = kafka.pending.register(request);
        let keyed = Keyed {
            shard,
            key: id.to_string(),
            record,
            source_timestamp: None,
        };
        if let Err(e) = kafka.producer.send_all(vec![keyed]).await {
            kafka.pending.forget(&request);
            return Err(CommandError::Unavailable(e));
        }
        if !self.engine.owns(shard) {
            kafka.pending.forget(&request);
            return Ok(Applied::Queued { incident: id });
        }
        match tokio::time::timeout(kafka.wait, outcome).await {
            Ok(Ok(outcome)) => outcome.map(Applied::Done),
            _ => {
                kafka.pending.forget(&request);
                Ok(Applied::Queued { incident: id })
            }
        }
    }
}
