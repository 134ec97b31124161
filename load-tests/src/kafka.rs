//! Kafka mode: native JSON arrays, one message per batch, to the alert
//! topic the service reads; and a sampler of how many alerts the service
//! has durably applied (its own counter, read from `/metrics`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Semaphore;

use crate::generate::{self, AlertSpec, Generator};
use crate::metrics_page;
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

/// Alerts the service has durably applied from Kafka: a shard consumer
/// adds to it only after the snapshot holding the alerts' effect is stored.
const APPLIED: &str = "incidentd_kafka_alerts_applied_total";

/// Samples, every second until `stop`, APPLIED since the start.
pub fn sample_durable(
    metrics_url: String,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let read = || async {
            let page = metrics_page::fetch(&client, &metrics_url).await?;
            Some(metrics_page::counter(&page, APPLIED, None))
        };
        let baseline = read().await.unwrap_or(0);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Some(total) = read().await {
                recorder.durable_sample(Instant::now(), total.saturating_sub(baseline));
            }
            tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
        }
    })
}
