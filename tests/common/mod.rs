//! Starts the real `incidentd` binary on a free loopback port with a
//! config and data dir of its own, and a webhook receiver that records what
//! it gets.

#![allow(dead_code)] // each test file uses a different part of this module

pub mod checkout;
pub mod events;
pub mod kafka;
pub mod load;
pub mod pulsar;
pub mod redis;
pub mod schemas;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// Routing and escalation for the crash tests: critical alerts page
/// `user:alice` at once through the webhook `hook`, then `team:db` after
/// `second_step_after`.
pub fn paging_config(hook: &str, second_step_after: &str) -> String {
    format!(
        r#"
[routing]
group_by = ["alertname"]
policies = {{ critical = "page" }}

[[escalation_policies]]
id = "page"
[[escalation_policies.steps]]
escalate_after = "{second_step_after}"
targets = ["user:alice"]
channels = ["hook"]
[[escalation_policies.steps]]
escalate_after = "1h"
targets = ["team:db"]
channels = ["hook"]

[[notifier.webhooks]]
name = "hook"
url = "{hook}"
initial_backoff = "50ms"
"#
    )
}

pub struct Service {
    pub base: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    config: PathBuf,
    data_dir: PathBuf,
    listen: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

impl Service {
    /// Starts the binary with `config` (TOML) and waits until it is ready.
    pub async fn start(config: &str) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("incidentd.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut service = Service {
            base: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            child: None,
            config: config_path,
            data_dir: dir.path().join("data"),
            listen: free_port(),
            log: dir.path().join("incidentd.log"),
            _dir: dir,
        };
        service.base = format!("http://{}", service.listen);
        service.spawn().await;
        service
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start incidentd");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "incidentd exited with {status} before it was ready; log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "incidentd not ready after 30 s; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL incidentd");
            child.wait().expect("reap incidentd");
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "incidentd did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("DELETE")
    }

    /// GET `path`, which must answer 2xx.
    pub async fn get_ok(&self, path: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get_ok(path).await.json().await.expect("JSON body")
    }

    /// The sum of the samples of metric `name` whose line contains every
    /// one of `parts` (label pairs such as `outcome="acked"`).
    pub async fn metric(&self, name: &str, parts: &[&str]) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every incident, following `next` cursors.
    pub async fn all_incidents(&self) -> Vec<Value> {
        self.try_all_incidents()
            .await
            .unwrap_or_else(|e| panic!("listing incidents: {e}"))
    }

    /// Every incident, or why not (a store that is down or busy answers 503
    /// for a while; pollers try again).
    pub async fn try_all_incidents(&self) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        let mut path = "/api/v1/incidents?limit=1000".to_string();
        loop {
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("GET {path}: {}", response.status()));
            }
            let page: Value = response.json().await.map_err(|e| e.to_string())?;
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/incidents?limit=1000&cursor={next}"),
                None => return Ok(items),
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A local HTTP server recording every POST to `/hook`; answers with the
/// statuses in `script` first (e.g. 500s to force retries), then 200.
pub struct WebhookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    pub async fn start(script: Vec<u16>) -> WebhookReceiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let record = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let record = record.clone();
                let script = script.clone();
                async move {
                    record.lock().unwrap().push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    axum::http::StatusCode::from_u16(status).expect("status")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        WebhookReceiver { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The distinct idempotency keys received: one per escalation step that
    /// fired. A redelivery after a crash repeats its step's key, which a
    /// receiver drops, so steps are counted by key, not by request.
    pub fn fired_steps(&self) -> std::collections::BTreeSet<String> {
        self.received()
            .iter()
            .map(|r| {
                r.headers["idempotency-key"]
                    .to_str()
                    .expect("key header")
                    .to_string()
            })
            .collect()
    }

    /// For the crash tests: step 2 was pending at the crash; once it has
    /// had time to fire, each of the two steps fired exactly once.
    pub async fn assert_both_steps_fired_once(&self) {
        // By key: a restart redelivers the last step with the same key.
        self.wait_for_steps(2, Duration::from_secs(15)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let steps = self.fired_steps();
        assert_eq!(
            steps.len(),
            2,
            "each of the two steps fired once: {steps:?}"
        );
        assert!(
            steps.iter().any(|k| k.ends_with(":1:0")),
            "step 2 fired: {steps:?}"
        );
    }

    /// Waits until at least `n` distinct idempotency keys arrived (bounded).
    pub async fn wait_for_steps(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.fired_steps().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` requests arrived (bounded).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `check` until it passes; on timeout fails with what it saw last
/// and the end of each service's log.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, services: &[&Service], mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = check().await;
        match last {
            Ok(()) => return,
            Err(state) if Instant::now() > deadline => {
                let logs: String = services
                    .iter()
                    .map(|service| {
                        let log = service.log_text();
                        let lines: Vec<&str> = log.lines().collect();
                        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                        format!("\n--- {} (last 60 log lines) ---\n{tail}", service.base)
                    })
                    .collect();
                panic!("{what} did not happen within {within:?}; last seen: {state}{logs}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
