//! HTTP senders: Alertmanager v2 arrays, native NDJSON, PagerDuty events.
//! At most `concurrency` requests are in flight; a 2xx answer means the
//! service stored the alerts (it answers after its group commit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use tokio::sync::Semaphore;

use crate::generate::{self, AlertSpec, Generator};
use crate::pace::Pacer;
use crate::record::Recorder;
use crate::scenario::{Mode, Scenario};

pub async fn run(
    scenario: &Scenario,
    gen: &mut Generator,
    recorder: Arc<Recorder>,
) -> anyhow::Result<()> {
    let client = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(scenario.concurrency)
        .connect_timeout(Duration::from_secs(5))
        .timeout(scenario.request_timeout)
        .tcp_nodelay(true)
        .build()?;
    let (path, content_type) = match scenario.mode {
        Mode::AlertmanagerV2 => ("/api/v2/alerts", "application/json"),
        Mode::NativeNdjson => ("/api/v1/alerts", "application/x-ndjson"),
        Mode::Pagerduty => ("/v2/enqueue", "application/json"),
        Mode::Kafka => anyhow::bail!("mode kafka has no HTTP sender"),
    };
    let url = format!("{}{path}", scenario.base_url());
    let batch = scenario.effective_batch();
    let permits = Arc::new(Semaphore::new(scenario.concurrency));
    let mut pacer = Pacer::new(Instant::now(), scenario.rate, scenario.duration);
    loop {
        let permit = permits.clone().acquire_owned().await?;
        let Some(progress) = pacer.next(batch).await else {
            break;
        };
        let specs: Vec<AlertSpec> = (0..batch).map(|_| gen.next(progress)).collect();
        let body = match scenario.mode {
            Mode::AlertmanagerV2 => generate::alertmanager_v2(gen, &specs, &scenario.severity),
            Mode::NativeNdjson => generate::native_ndjson(gen, &specs, &scenario.severity),
            _ => generate::pagerduty(gen, &specs[0], &scenario.severity),
        };
        let opening = specs
            .iter()
            .filter(|s| s.opens_group)
            .map(|s| gen.incident_key(scenario.mode, s.group))
            .collect();
        let request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        let recorder = recorder.clone();
        let sent = Instant::now();
        recorder.sending(batch, opening, sent);
        tokio::spawn(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await;
                    if status.is_success() && body.is_ok() {
                        recorder.acked(batch, sent, Instant::now());
                    } else if status.is_success() {
                        recorder.failed("body_read", batch);
                    } else {
                        recorder.failed(&format!("http_{}", status.as_u16()), batch);
                    }
                }
                Err(e) => recorder.failed(classify(&e), batch),
            }
            drop(permit);
        });
    }
    // The in-flight requests end by their own timeout.
    let _ = permits.acquire_many(scenario.concurrency as u32).await;
    Ok(())
}

fn classify(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}
