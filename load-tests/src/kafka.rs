//! Kafka mode: native JSON arrays, one message per batch, to the alert
//! topic the service reads; and, optionally, a sampler of how many alerts
//! the service has durably applied (its consumer group's committed offsets
//! on the keyed topic: one keyed record per alert, committed only after the
//! shard stored its effect).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Semaphore;

use crate::generate::{self, AlertSpec, Generator};
use crate::pace::Pacer;
use crate::record::Recorder;
use crate::scenario::Scenario;

pub async fn run(
    scenario: &Scenario,
    gen: &mut Generator,
    recorder: Arc<Recorder>,
) -> anyhow::Result<()> {
    let brokers = scenario.kafka_brokers.as_deref().context("no brokers")?;
    let topic = scenario.kafka_topic.clone().context("no topic")?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "incidentd-load")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            scenario.request_timeout.as_millis().to_string(),
        )
        .create()
        .context("cannot create the Kafka producer")?;
    let batch = scenario.effective_batch();
    let permits = Arc::new(Semaphore::new(scenario.concurrency));
    let mut pacer = Pacer::new(Instant::now(), scenario.rate, scenario.duration);
    loop {
        let permit = permits.clone().acquire_owned().await?;
        let Some(progress) = pacer.next(batch).await else {
            break;
        };
        let specs: Vec<AlertSpec> = (0..batch).map(|_| gen.next(progress)).collect();
        let body = generate::native_array(gen, &specs, &scenario.severity);
        let opening = specs
            .iter()
            .filter(|s| s.opens_group)
            .map(|s| gen.incident_key(scenario.mode, s.group))
            .collect();
        let sent = Instant::now();
        recorder.sending(batch, opening, sent);
        let mut record = FutureRecord::<(), [u8]>::to(&topic).payload(&body);
        let delivery = loop {
            match producer.send_result(record) {
                Ok(delivery) => break Some(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => {
                    recorder.failed(&kafka_error(&e), batch);
                    break None;
                }
            }
        };
        let Some(delivery) = delivery else { continue };
        let recorder = recorder.clone();
        tokio::spawn(async move {
            match delivery.await {
                Ok(Ok(_)) => recorder.acked(batch, sent, Instant::now()),
                Ok(Err((e, _))) => recorder.failed(&kafka_error(&e), batch),
                Err(_) => recorder.failed("kafka_canceled", batch),
            }
            drop(permit);
        });
    }
    let _ = permits.acquire_many(scenario.concurrency as u32).await;
    let _ = producer.flush(Duration::from_secs(5));
    Ok(())
}

fn kafka_error(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("kafka_{code:?}"),
        None => "kafka_other".into(),
    }
}

/// Samples, every second until `stop`, the alerts durably applied since
/// the start (committed offsets of `group` on `keyed_topic`, summed over
/// partitions, minus those at the start).
pub fn sample_durable(
    brokers: &str,
    keyed_topic: &str,
    group: &str,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    // Reading committed offsets does not join the group.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("client.id", "incidentd-load-offsets")
        .create()
        .context("cannot create the offsets reader")?;
    let metadata = consumer
        .fetch_metadata(Some(keyed_topic), Duration::from_secs(5))
        .context("cannot read the keyed topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "keyed topic {keyed_topic} has no partitions"
    );
    let topic = keyed_topic.to_string();
    let committed = move || -> Option<u64> {
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&topic, *p);
        }
        let tpl = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .ok()?;
        Some(
            tpl.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(n) if n > 0 => n as u64,
                    _ => 0,
                })
                .sum(),
        )
    };
    let baseline = committed().context("cannot read the committed offsets")?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Some(total) = committed() {
                recorder.durable_sample(Instant::now(), total.saturating_sub(baseline));
            }
            std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
        }
    }))
}
