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

/// How long the warm-up waits for its alert to be durable.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The producer a run sends with.
pub fn producer(scenario: &Scenario) -> anyhow::Result<FutureProducer> {
    let brokers = scenario.kafka_brokers.as_deref().context("no brokers")?;
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "incidentd-load")
        .set("socket.nagle.disable", "true")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            scenario.request_timeout.as_millis().to_string(),
        )
        .create()
        .context("cannot create the Kafka producer")
}

/// Sends one alert before the run (alertname `warmup-<run id>`, which the
/// run's observers ignore) and waits until the service has durably applied
/// it. A cold start costs hundreds of milliseconds once — metadata and an
/// idempotent producer id for the generator's producer and for the
/// service's re-keying one, fetch sessions of its consumers — which a
/// running deployment has long paid; without this the first half second
/// of every run measured it (created p99 400 ms instead of 80 ms at
/// 8,000 alerts/s).
pub async fn warm_up(
    scenario: &Scenario,
    producer: &FutureProducer,
    run_id: &str,
    metrics_url: &str,
) -> anyhow::Result<()> {
    let topic = scenario.kafka_topic.as_deref().context("no topic")?;
    let applied = Applied::at(metrics_url.to_string());
    let before = applied.read().await.unwrap_or(0);
    let alertname = format!("warmup-{run_id}");
    let body = serde_json::to_vec(&serde_json::json!([{
        "status": "firing",
        "severity": "info",
        "summary": "incidentd-load warm-up",
        "labels": {"alertname": alertname, "instance": "warmup"},
    }]))?;
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic).payload(&body),
            scenario.request_timeout,
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("warm-up alert not acknowledged by Kafka: {e}"))?;
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    while applied.read().await.unwrap_or(0) <= before {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service did not apply the warm-up alert within {WARM_UP_TIMEOUT:?} ({APPLIED} at {metrics_url} did not grow)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn run(
    scenario: &Scenario,
    producer: &FutureProducer,
    gen: &mut Generator,
    recorder: Arc<Recorder>,
) -> anyhow::Result<()> {
    let topic = scenario.kafka_topic.clone().context("no topic")?;
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

/// APPLIED as the service's `/metrics` page says.
struct Applied {
    client: reqwest::Client,
    metrics_url: String,
}

impl Applied {
    fn at(metrics_url: String) -> Applied {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        Applied {
            client,
            metrics_url,
        }
    }

    /// None while the page cannot be read.
    async fn read(&self) -> Option<u64> {
        let page = metrics_page::fetch(&self.client, &self.metrics_url).await?;
        Some(metrics_page::counter(&page, APPLIED, None))
    }
}

/// Samples, every second until `stop`, APPLIED since the start.
pub fn sample_durable(
    metrics_url: String,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let applied = Applied::at(metrics_url);
        let baseline = applied.read().await.unwrap_or(0);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Some(total) = applied.read().await {
                recorder.durable_sample(Instant::now(), total.saturating_sub(baseline));
            }
            tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
        }
    })
}
