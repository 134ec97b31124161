//! The shard consumers: one Kafka consumer per replica in the replicas'
//! group, reading the keyed topic (and sources already keyed by shard).
//! Partition N is shard N. On assign the shard is restored from the store
//! (claiming it with a new epoch) and reading resumes after the offset its
//! snapshot recorded; on revoke the partition's worker finishes its batch,
//! the shard stores its state and stops, and the offsets are committed.
//!
//! The consumer runs on its own thread: librdkafka calls the rebalance
//! callback from `poll`, and that callback waits for restores and hand-overs
//! to finish, which must not block a tokio worker thread.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use incidentd_actors::EngineError;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;

use super::client::consumer_config;
use super::telemetry;
use super::worker::{spawn_worker, Payload, WorkerHandle, WorkerShared};
use super::KafkaConfig;

/// How long one poll waits for a message before tending the partitions.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

type TopicPartition = (String, i32);

/// A partition this replica reads, with what could not be handed to its
/// worker yet (only while the partition is paused).
struct Assigned {
    worker: WorkerHandle,
    /// Last applied offset already stored for commit.
    stored: i64,
    paused: bool,
    overflow: VecDeque<OwnedMessage>,
}

pub struct GroupContext {
    runtime: Handle,
    shared: Arc<WorkerShared>,
    /// How each subscribed topic's messages are written.
    payloads: HashMap<String, Payload>,
    buffer: usize,
    handover_timeout: Duration,
    shutdown: Arc<AtomicBool>,
    assigned: Mutex<HashMap<TopicPartition, Assigned>>,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        telemetry::lag(&statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::error!(error = ?other, "kafka rebalance failed; giving up every partition");
                telemetry::rebalance("error", 0);
                let all = consumer.assignment().unwrap_or_default();
                self.revoke(consumer, &all);
            }
        }
    }
}

impl GroupContext {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let started = Instant::now();
        let partitions = partitions_of(tpl);
        let shards: BTreeSet<usize> = partitions.iter().map(|(_, p)| *p as usize).collect();
        tracing::info!(?shards, "kafka assigned shards; restoring them");
        let offsets = self.runtime.block_on(self.acquire_all(&shards));
        let mut assigned = self.assigned.lock().expect("assigned lock");
        for (topic, partition) in partitions {
            let shard = partition as usize;
            let Some(shard_offsets) = offsets.get(&shard) else {
                continue;
            };
            let source = format!("{topic}/{partition}");
            if let Some(applied) = shard_offsets.get(&source) {
                if let Err(e) =
                    tpl.set_partition_offset(&topic, partition, Offset::Offset(applied + 1))
                {
                    tracing::error!(%source, error = %e, "cannot set the start offset");
                }
            }
            let payload = self.payloads.get(&topic).copied().unwrap_or(Payload::Keyed);
            let worker = spawn_worker(
                &self.runtime,
                self.shared.clone(),
                topic.clone(),
                partition,
                payload,
                self.buffer,
                shard_offsets,
            );
            assigned.insert(
                (topic, partition),
                Assigned {
                    worker,
                    stored: -1,
                    paused: false,
                    overflow: VecDeque::new(),
                },
            );
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "kafka assign failed");
        }
        telemetry::owned_shards(owned_shards(&assigned));
        telemetry::rebalance("assign", tpl.count());
        telemetry::handover("assign", started.elapsed());
        tracing::info!(?shards, took = ?started.elapsed(), "kafka shards restored and reading");
    }

    /// Restores every shard at once; a shard whose store is down is retried
    /// until it comes back or the service stops.
    async fn acquire_all(&self, shards: &BTreeSet<usize>) -> HashMap<usize, BTreeMap<String, i64>> {
        let tasks: Vec<_> = shards
            .iter()
            .map(|&shard| {
                let engine = self.shared.engine.clone();
                let shutdown = self.shutdown.clone();
                tokio::spawn(async move {
                    let mut delay = Duration::from_millis(100);
                    loop {
                        match engine.acquire_shard(shard).await {
                            Ok((offsets, report)) => {
                                tracing::info!(shard, incidents = report.incidents, took = ?report.duration, "shard restored");
                                return Some(offsets);
                            }
                            Err(e @ EngineError::NoSuchShard { .. }) => {
                                tracing::error!(shard, error = %e, "assigned a partition with no shard");
                                return None;
                            }
                            Err(e) => {
                                tracing::warn!(shard, error = %e, "restoring an assigned shard failed; retrying");
                            }
                        }
                        if shutdown.load(Ordering::Relaxed) {
                            return None;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                })
            })
            .collect();
        let mut offsets = HashMap::new();
        for (shard, task) in shards.iter().zip(tasks) {
            if let Ok(Some(found)) = task.await {
                offsets.insert(*shard, found);
            }
        }
        offsets
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let started = Instant::now();
        let partitions = partitions_of(tpl);
        let shards: BTreeSet<usize> = partitions.iter().map(|(_, p)| *p as usize).collect();
        let mut leaving = Vec::new();
        {
            let mut assigned = self.assigned.lock().expect("assigned lock");
            for key in &partitions {
                if let Some(entry) = assigned.remove(key) {
                    entry.worker.stop.store(true, Ordering::Relaxed);
                    leaving.push((key.clone(), entry.worker));
                }
            }
            telemetry::owned_shards(owned_shards(&assigned));
        }
        let engine = self.shared.engine.clone();
        let mut finished = Vec::new();
        let handover = async {
            for ((topic, partition), worker) in leaving {
                drop(worker.sender);
                let _ = worker.task.await;
                finished.push((topic, partition, worker.applied.load(Ordering::Acquire)));
            }
            for shard in &shards {
                engine.release_shard(*shard).await;
            }
        };
        let timed_out = self
            .runtime
            .block_on(async { tokio::time::timeout(self.handover_timeout, handover).await })
            .is_err();
        if timed_out {
            tracing::error!(?shards, bound = ?self.handover_timeout, "shard hand-over exceeded its bound; going on without it (the next owner fences this replica out)");
        }
        for (topic, partition, applied) in &finished {
            if *applied >= 0 {
                let _ = consumer.store_offset(topic, *partition, *applied);
            }
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "committing offsets at revoke failed; the next owner starts from the snapshots' offsets anyway")
            }
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "kafka unassign failed");
        }
        telemetry::rebalance("revoke", tpl.count());
        telemetry::handover("revoke", started.elapsed());
        tracing::info!(?shards, took = ?started.elapsed(), "kafka shards handed over");
    }

    /// Hands a message to its partition's worker; pauses the partition when
    /// the worker is full (its shard is behind).
    fn dispatch(&self, consumer: &BaseConsumer<Self>, message: OwnedMessage) {
        let key = (message.topic().to_string(), message.partition());
        let mut assigned = self.assigned.lock().expect("assigned lock");
        // Not ours (any more): the owner reads it from its snapshot's offset.
        let Some(entry) = assigned.get_mut(&key) else {
            return;
        };
        if !entry.overflow.is_empty() {
            entry.overflow.push_back(message);
            return;
        }
        match entry.worker.sender.try_send(message) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(message)) => {
                entry.overflow.push_back(message);
                if !entry.paused {
                    entry.paused = set_paused(consumer, &key, true);
                    telemetry::partition_paused(&key.0);
                }
            }
        }
    }

    /// Moves held-back messages on, resumes drained partitions and stores
    /// the offsets whose effect is durable.
    fn tend(&self, consumer: &BaseConsumer<Self>) {
        let mut assigned = self.assigned.lock().expect("assigned lock");
        for (key, entry) in assigned.iter_mut() {
            while let Some(message) = entry.overflow.pop_front() {
                match entry.worker.sender.try_send(message) {
                    Ok(()) => {}
                    Err(TrySendError::Full(message)) => {
                        entry.overflow.push_front(message);
                        break;
                    }
                    Err(TrySendError::Closed(_)) => entry.overflow.clear(),
                }
            }
            // Resume only with room for a good run, not for one message.
            if entry.paused
                && entry.overflow.is_empty()
                && entry.worker.sender.capacity() * 2 >= self.buffer
            {
                entry.paused = !set_paused(consumer, key, false);
            }
            // librdkafka commits the offset after the stored one.
            let applied = entry.worker.applied.load(Ordering::Acquire);
            if applied > entry.stored {
                match consumer.store_offset(&key.0, key.1, applied) {
                    Ok(()) => entry.stored = applied,
                    Err(e) => {
                        tracing::debug!(topic = %key.0, partition = key.1, error = %e, "offset not stored")
                    }
                }
            }
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn owned_shards(assigned: &HashMap<TopicPartition, Assigned>) -> usize {
    assigned
        .keys()
        .map(|(_, p)| *p)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Pauses or resumes one partition; true when librdkafka did it.
fn set_paused(consumer: &BaseConsumer<GroupContext>, key: &TopicPartition, pause: bool) -> bool {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&key.0, key.1);
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(topic = %key.0, partition = key.1, pause, error = %e, "pause/resume failed");
            false
        }
    }
}

/// Starts the shard consumer on its own thread; it runs until `shutdown`,
/// then hands every shard back (stored, committed) and leaves the group.
pub fn start_group(
    config: &KafkaConfig,
    shared: Arc<WorkerShared>,
    shutdown: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let mut payloads = HashMap::from([(config.keyed_topic.clone(), Payload::Keyed)]);
    for source in config.sources.iter().filter(|s| s.keyed_by_group_key) {
        payloads.insert(source.topic.clone(), Payload::Source(source.format));
    }
    let context = GroupContext {
        runtime: Handle::current(),
        shared,
        payloads: payloads.clone(),
        buffer: config.partition_buffer,
        handover_timeout: config.handover_timeout,
        shutdown: shutdown.clone(),
        assigned: Mutex::new(HashMap::new()),
    };
    let consumer: BaseConsumer<GroupContext> = consumer_config(config, &config.group_id)
        .create_with_context(context)
        .map_err(|e| format!("kafka consumer: {e}"))?;
    let topics: Vec<&str> = payloads.keys().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("kafka subscribe to {topics:?}: {e}"))?;
    let leave_bound = config.handover_timeout + Duration::from_secs(5);
    std::thread::Builder::new()
        .name("kafka-shards".into())
        .spawn(move || run(consumer, shutdown, leave_bound))
        .map_err(|e| format!("kafka consumer thread: {e}"))
}

fn run(consumer: BaseConsumer<GroupContext>, shutdown: Arc<AtomicBool>, leave_bound: Duration) {
    while !shutdown.load(Ordering::Relaxed) {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => consumer.context().dispatch(&consumer, message.detach()),
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
            None => {}
        }
        consumer.context().tend(&consumer);
    }
    // Leaving: the revoke this triggers stores and commits every shard, so
    // the other replicas take over from exactly here.
    consumer.unsubscribe();
    let deadline = Instant::now() + leave_bound;
    while Instant::now() < deadline
        && !consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
    {
        if let Some(Ok(message)) = consumer.poll(POLL_INTERVAL) {
            drop(message);
        }
    }
    let rest = consumer.assignment().unwrap_or_default();
    if rest.count() > 0 {
        consumer.context().revoke(&consumer, &rest);
    }
    tracing::info!("kafka shard consumer left the group");
}
