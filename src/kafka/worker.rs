//! One assigned partition of a shard's input: takes its messages in order,
//! in batches, hands them to the shard (several batches may await the
//! shard's group commit at once) and reports, in order, the last offset
//! whose effect is stored (the consumer then stores it for commit).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use incidentd_actors::model::{Alert, CommandError, Timestamp};
use incidentd_actors::ports::{AlertRecord, Progress, SourcePosition};
use incidentd_actors::{Engine, EngineError, Stored};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::producer::{Keyed, KeyedProducer, SourceMessage, SOURCE_TIMESTAMP_HEADER};
use super::record::{KeyedRecord, Origin};
use super::source::decode_held;
use super::telemetry;
use super::PendingReplies;
use crate::ingest::{PagerDutyKeys, SourceFormat};

/// When a message's alerts reached Kafka (ms): the source record's
/// timestamp for a re-keyed record, the message's own otherwise.
fn source_timestamp(message: &OwnedMessage) -> Option<i64> {
    let from_header = message.headers().and_then(|headers| {
        let header = headers
            .iter()
            .find(|header| header.key == SOURCE_TIMESTAMP_HEADER)?;
        std::str::from_utf8(header.value?).ok()?.parse().ok()
    });
    from_header.or_else(|| message.timestamp().to_millis())
}

/// Longest pause between retries of input the shard could not take yet.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How a topic's messages are written.
#[derive(Clone, Copy, Debug)]
pub enum Payload {
    Keyed,
    Source(SourceFormat),
}

/// What every worker shares.
pub struct WorkerShared {
    pub engine: Arc<Engine>,
    pub producer: Arc<KeyedProducer>,
    pub pending: Arc<PendingReplies>,
    pub pagerduty: Arc<PagerDutyKeys>,
    pub default_tenant: String,
    pub max_batch: usize,
}

/// The consumer's side of a running worker.
pub struct WorkerHandle {
    pub sender: mpsc::Sender<OwnedMessage>,
    /// Last offset whose effect is stored; -1 before the first.
    pub applied: Arc<AtomicI64>,
    /// Set at revoke: finish the batch in hand, then stop.
    pub stop: Arc<AtomicBool>,
    pub task: JoinHandle<()>,
}

pub fn spawn_worker(
    runtime: &tokio::runtime::Handle,
    shared: Arc<WorkerShared>,
    topic: String,
    partition: i32,
    payload: Payload,
    buffer: usize,
    applied_origins: &BTreeMap<String, i64>,
) -> WorkerHandle {
    let (sender, receiver) = mpsc::channel(buffer);
    let applied = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        shared,
        shard: partition as usize,
        source: format!("{topic}/{partition}"),
        topic,
        payload,
        applied: applied.clone(),
        stop: stop.clone(),
        origins: applied_origins
            .iter()
            .map(|(source, offset)| (source.clone(), *offset))
            .collect(),
    };
    let task = runtime.spawn(worker.run(receiver));
    WorkerHandle {
        sender,
        applied,
        stop,
        task,
    }
}

struct Worker {
    shared: Arc<WorkerShared>,
    shard: usize,
    topic: String,
    /// The name the shard records this partition's applied offset under.
    source: String,
    payload: Payload,
    applied: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    /// Highest source offset applied per re-keyed source partition, from
    /// the shard's snapshot at assignment, then as records pass.
    origins: HashMap<String, i64>,
}

/// One step of a batch, in message order.
enum Step {
    /// Alerts from consecutive messages, up to and including `offset`, with
    /// the highest source offset of each re-keyed origin among them and the
    /// message each alert came in.
    Alerts {
        alerts: Vec<Alert>,
        offset: i64,
        origins: BTreeMap<String, i64>,
        records: Vec<AlertRecord>,
        /// When each message read into the step reached Kafka (ms): its
        /// source's timestamp if it was re-keyed, else its own.
        timestamps: Vec<Option<i64>>,
    },
    Record {
        record: Box<KeyedRecord>,
        offset: i64,
    },
}

/// Alerts handed to the shard, until their effect is stored.
struct InFlight {
    step: Step,
    stored: Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send>>,
}

/// Batches of alerts handed to the shard before the oldest of them is
/// stored. The shard applies a batch at once (its events go out) and stores
/// it with its next group commit; handing over the next batches meanwhile,
/// instead of waiting a commit per batch, is what keeps a busy partition's
/// alerts from queueing behind the commits.
const MAX_IN_FLIGHT: usize = 8;

impl Worker {
    async fn run(mut self, mut receiver: mpsc::Receiver<OwnedMessage>) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        loop {
            let room = in_flight.len() < MAX_IN_FLIGHT;
            let oldest = async {
                match in_flight.front_mut() {
                    Some(oldest) => oldest.stored.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                stored = oldest => {
                    let done = in_flight.pop_front().expect("the oldest is there");
                    if !self.confirm(done.step, stored).await {
                        return;
                    }
                    continue;
                }
                message = receiver.recv(), if room => message,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < self.shared.max_batch {
                match receiver.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            if self.stopped() {
                break;
            }
            let steps = self.decode(batch).await;
            for step in steps {
                if !self.take(step, &mut in_flight).await {
                    return;
                }
            }
        }
        // Stopping: what was handed over is stored with the shard's next
        // commit; its offsets are reported (and committed) after it.
        self.confirm_all_but(0, &mut in_flight).await;
    }

    /// Hands alerts to the shard without waiting for their commit; a
    /// record (command, creation) only after everything before it is
    /// stored, so the reported offset only grows. False when the shard is
    /// no longer ours or the worker is told to stop.
    async fn take(&self, step: Step, in_flight: &mut VecDeque<InFlight>) -> bool {
        let Step::Alerts {
            alerts,
            offset,
            origins,
            records,
            ..
        } = &step
        else {
            return self.confirm_all_but(0, in_flight).await && self.apply(step).await;
        };
        if !self.confirm_all_but(MAX_IN_FLIGHT - 1, in_flight).await {
            return false;
        }
        let dispatch = || std::future::ready(self.dispatch(alerts, *offset, origins, records));
        let Some(stored) = self.retrying(dispatch).await else {
            return false;
        };
        in_flight.push_back(InFlight {
            step,
            stored: Box::pin(stored.stored()),
        });
        true
    }

    /// Waits for the oldest handed-over steps until at most `left` remain.
    async fn confirm_all_but(&self, left: usize, in_flight: &mut VecDeque<InFlight>) -> bool {
        while in_flight.len() > left {
            let done = in_flight.pop_front().expect("the oldest is there");
            let stored = done.stored.await;
            if !self.confirm(done.step, stored).await {
                return false;
            }
        }
        true
    }

    /// Reports a handed-over step's offset once it is stored. When that
    /// commit failed, the step is sent again until a later commit stores it:
    /// a replay the shard skips when it still holds the step's effect, or
    /// applies again when an incident that took it failed before storing.
    async fn confirm(&self, step: Step, stored: Result<(), EngineError>) -> bool {
        match stored {
            Ok(()) => {
                self.report_stored(&step);
                true
            }
            Err(EngineError::NotOwned { .. }) | Err(EngineError::ShuttingDown) => false,
            Err(_) => self.apply(step).await,
        }
    }

    /// A step's effect is stored: its offset may be committed.
    fn report_stored(&self, step: &Step) {
        let offset = match step {
            Step::Alerts {
                alerts,
                offset,
                timestamps,
                ..
            } => {
                telemetry::alerts_applied(alerts.len());
                telemetry::record_ages("stored", timestamps.iter().copied());
                offset
            }
            Step::Record { offset, .. } => offset,
        };
        self.applied.store(*offset, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Turns messages into steps; a message that cannot be used goes to the
    /// dead-letter topic (and still advances the offset).
    async fn decode(&mut self, batch: Vec<OwnedMessage>) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        for message in batch {
            let offset = message.offset();
            let payload = message.payload().unwrap_or_default();
            let mut origin_seen: Option<Origin> = None;
            let (alerts, records, problem) = match self.payload {
                Payload::Keyed => match KeyedRecord::decode(payload) {
                    Ok(KeyedRecord::Alerts { alerts, origin }) => match origin {
                        Some(origin) if !self.first_read(&origin) => {
                            telemetry::consumed(&self.topic, "replayed", 1);
                            (Vec::new(), Vec::new(), None)
                        }
                        Some(origin) => {
                            origin_seen = Some(origin);
                            (alerts, Vec::new(), None)
                        }
                        None => (alerts, Vec::new(), None),
                    },
                    Ok(record) => (Vec::new(), vec![record], None),
                    Err(problem) => (Vec::new(), Vec::new(), Some(problem)),
                },
                Payload::Source(format) => {
                    let Some(input) =
                        decode_held(&self.shared, &self.topic, format, payload, &self.stop).await
                    else {
                        return steps;
                    };
                    let problem = input.problem.clone();
                    let origin = Origin {
                        source: self.source.clone(),
                        offset,
                    };
                    let Some((alerts, records)) = self
                        .keep_mine(input.into_records(
                            &self.shared.engine,
                            Some(origin),
                            message.timestamp().to_millis(),
                        ))
                        .await
                    else {
                        // Stopping: this message is read again by the next owner.
                        return steps;
                    };
                    (alerts, records, problem)
                }
            };
            if let Some(reason) = problem {
                self.shared
                    .producer
                    .dead_letter_until_stored(&SourceMessage::of(&message), &reason, &self.stop)
                    .await;
                if self.stopped() {
                    return steps;
                }
            }
            telemetry::consumed(&self.topic, "received", 1);
            let origins: BTreeMap<String, i64> = origin_seen
                .map(|o| (o.source, o.offset))
                .into_iter()
                .collect();
            let timestamp = source_timestamp(&message);
            let time = message.timestamp().to_millis().map(Timestamp::from_millis);
            let record =
                |first_alert| AlertRecord::new(first_alert, &self.source, &[offset as u64], time);
            match steps.last_mut() {
                Some(Step::Alerts {
                    alerts: pending,
                    offset: last,
                    origins: known,
                    records: read_from,
                    timestamps,
                }) if records.is_empty() => {
                    read_from.push(record(pending.len()));
                    timestamps.push(timestamp);
                    pending.extend(alerts);
                    *last = offset;
                    // Offsets of one origin only grow along a partition.
                    known.extend(origins);
                }
                _ if records.is_empty() => steps.push(Step::Alerts {
                    alerts,
                    offset,
                    origins,
                    records: vec![record(0)],
                    timestamps: vec![timestamp],
                }),
                _ => {
                    if !alerts.is_empty() {
                        steps.push(Step::Alerts {
                            alerts,
                            offset,
                            origins,
                            records: vec![record(0)],
                            timestamps: vec![timestamp],
                        });
                    }
                    steps.extend(records.into_iter().map(|record| Step::Record {
                        record: Box::new(record),
                        offset,
                    }));
                }
            }
        }
        steps
    }

    /// Whether `origin` is read here for the first time (and remembers it):
    /// a source re-read after a crash is re-keyed again, and those copies
    /// must change nothing.
    fn first_read(&mut self, origin: &Origin) -> bool {
        match self.origins.get_mut(&origin.source) {
            Some(applied) if origin.offset <= *applied => false,
            Some(applied) => {
                *applied = origin.offset;
                true
            }
            None => {
                self.origins.insert(origin.source.clone(), origin.offset);
                true
            }
        }
    }

    /// Splits the records of an already-keyed source's message into what
    /// this shard applies and what belongs to other shards, which travels on
    /// through the keyed topic (never dropped).
    async fn keep_mine(&self, records: Vec<Keyed>) -> Option<(Vec<Alert>, Vec<KeyedRecord>)> {
        let (mine, elsewhere): (Vec<Keyed>, Vec<Keyed>) =
            records.into_iter().partition(|k| k.shard == self.shard);
        if !elsewhere.is_empty() {
            let count = elsewhere.len();
            if !self
                .shared
                .producer
                .send_all_until_acked(elsewhere, &self.stop)
                .await
            {
                return None;
            }
            telemetry::consumed(&self.topic, "rekeyed", count);
        }
        let mut alerts = Vec::new();
        let mut others = Vec::new();
        for keyed in mine {
            match keyed.record {
                KeyedRecord::Alerts { alerts: mine, .. } => alerts.extend(mine),
                record => others.push(record),
            }
        }
        Some((alerts, others))
    }

    /// Applies one step, retrying while the shard is busy or its store is
    /// down. False when the shard is no longer ours or the worker is told to
    /// stop: what is not applied is read again by the next owner.
    async fn apply(&self, step: Step) -> bool {
        let applied = self.retrying(|| self.try_apply(&step)).await.is_some();
        if applied {
            self.report_stored(&step);
        }
        applied
    }

    /// Runs `attempt` until it succeeds, pausing with backoff while the
    /// shard cannot take input yet (full, or its store is down). None when
    /// the shard is no longer ours or the worker is told to stop.
    async fn retrying<T, F>(&self, mut attempt: impl FnMut() -> F) -> Option<T>
    where
        F: Future<Output = Result<T, EngineError>>,
    {
        let mut delay = Duration::from_millis(10);
        loop {
            match attempt().await {
                Ok(value) => return Some(value),
                Err(EngineError::NotOwned { .. }) | Err(EngineError::ShuttingDown) => return None,
                Err(e) => {
                    if self.stopped() {
                        return None;
                    }
                    tracing::debug!(shard = self.shard, error = %e, "shard cannot take input yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Applies a step and waits until it is stored.
    async fn try_apply(&self, step: &Step) -> Result<(), EngineError> {
        let engine = &self.shared.engine;
        match step {
            Step::Alerts {
                alerts,
                offset,
                origins,
                records,
                ..
            } => {
                self.dispatch(alerts, *offset, origins, records)?
                    .stored()
                    .await
            }
            Step::Record { record, offset } => {
                let position = Some(self.position(*offset));
                let (request, outcome) = match record.as_ref() {
                    KeyedRecord::Alerts { .. } => {
                        unreachable!("alerts are batched in Step::Alerts")
                    }
                    KeyedRecord::Command {
                        incident,
                        command,
                        actor,
                        request,
                    } => (
                        Some(request),
                        engine
                            .command_on(self.shard, *incident, command.clone(), actor, position)
                            .await,
                    ),
                    KeyedRecord::Create {
                        incident,
                        new,
                        actor,
                        request,
                    } => (
                        Some(request),
                        engine
                            .create_incident_as(*incident, new.clone(), actor, position)
                            .await,
                    ),
                    KeyedRecord::GroupCommand {
                        probe,
                        command,
                        actor,
                    } => match engine.incident_for(probe).await {
                        Some(id) => (
                            None,
                            engine
                                .command_on(self.shard, id, command.clone(), actor, position)
                                .await,
                        ),
                        // No incident to act on: only the offset moves.
                        None => {
                            return engine
                                .submit_to_shard(self.shard, Vec::new(), Progress::at(position))
                                .await
                                .map(|_| ());
                        }
                    },
                };
                let result = match &outcome {
                    Err(CommandError::Unavailable(message)) => {
                        Err(EngineError::Retry(message.clone()))
                    }
                    _ => Ok(()),
                };
                if result.is_ok() {
                    if let Some(request) = request {
                        self.shared.pending.complete(request, outcome);
                    }
                }
                result
            }
        }
    }

    /// Hands a step's alerts to the shard with where they sit: this
    /// partition's offset, the origins' offsets and the records they came in.
    fn dispatch(
        &self,
        alerts: &[Alert],
        offset: i64,
        origins: &BTreeMap<String, i64>,
        records: &[AlertRecord],
    ) -> Result<Stored, EngineError> {
        let progress = Progress {
            position: Some(self.position(offset)),
            origins: origins
                .iter()
                .map(|(source, offset)| SourcePosition {
                    source: source.clone(),
                    offset: *offset,
                })
                .collect(),
            records: records.to_vec(),
        };
        self.shared
            .engine
            .dispatch_to_shard(self.shard, alerts.to_vec(), progress)
    }

    fn position(&self, offset: i64) -> SourcePosition {
        SourcePosition {
            source: self.source.clone(),
            offset,
        }
    }
}
