//! The service configuration: built-in defaults, then a TOML file, then
//! `INCIDENTD__SECTION__KEY` environment variables, then command-line flags.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//! `config/default.toml` documents every key.

mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use incidentd_actors::escalation::EscalationPolicy;
use incidentd_actors::routing::RouteConfig;
use incidentd_actors::EngineSettings;
use serde::{Deserialize, Serialize};

pub use crate::ingest::pulsar::{PulsarSource, PulsarSourceConfig, PulsarSubscriptionType};
pub use crate::ingest::SourceFormat;
pub use crate::kafka::{KafkaConfig, KafkaSource};
pub use crate::sinks::{EventsConfig, KafkaEventsConfig, PulsarEventsConfig};
pub use crate::subscriptions::SubscriptionsConfig;
pub use load::{load, pulsar_url_error, ConfigError, Overrides};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub engine: EngineSettings,
    pub notifier: NotifierConfig,
    pub store: StoreConfig,
    pub kafka: KafkaConfig,
    pub pulsar: PulsarSourceConfig,
    pub events: EventsConfig,
    pub subscriptions: SubscriptionsConfig,
    /// The root of the routing tree.
    pub routing: RouteConfig,
    pub escalation_policies: Vec<EscalationPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP API and ingest listen on.
    pub listen: SocketAddr,
    /// Where the embedded snapshot store keeps its files: a log per shard
    /// under `live-log/` and `incidentd.redb`.
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// Largest body on the PagerDuty endpoint `/v2/enqueue`, in bytes.
    pub pagerduty_body_limit_bytes: usize,
    /// Bearer tokens; when any is set, every endpoint but /healthz, /readyz
    /// and /metrics requires one.
    pub auth_tokens: Vec<String>,
    /// Events kept for SSE clients that reconnect with `Last-Event-ID`.
    pub sse_replay_events: usize,
    /// On SIGTERM/SIGINT: how long to drain and store before exiting anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            body_limit_bytes: 1024 * 1024,
            pagerduty_body_limit_bytes: 512 * 1024,
            auth_tokens: Vec::new(),
            sse_replay_events: 10_000,
            shutdown_timeout: Duration::from_secs(20),
            log_format: LogFormat::Pretty,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Alertmanager API v2: an alert without `endsAt` is considered
    /// resolved this long after it was received, unless sent again.
    #[serde(with = "humantime_serde")]
    pub resolve_timeout: Duration,
    /// Tenant of alerts whose source names none.
    pub default_tenant: String,
    /// PagerDuty Events v2: how long after its last trigger a dedup key
    /// still finds its incident for an acknowledge or resolve. Kept in the
    /// store, so it holds across restarts and on every replica.
    #[serde(with = "humantime_serde")]
    pub pagerduty_key_ttl: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            resolve_timeout: Duration::from_secs(5 * 60),
            default_tenant: "default".into(),
            pagerduty_key_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// The built-in `log` channel writes each escalation to the log.
    pub log: bool,
    /// Webhook channels, referenced by name from escalation steps.
    pub webhooks: Vec<WebhookChannelConfig>,
    /// Escalation notifications waiting for delivery, per channel; beyond
    /// it new ones are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            log: true,
            webhooks: Vec::new(),
            queue_capacity: 10_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannelConfig {
    /// Channel name used in escalation steps, e.g. "webhook" or "oncall-db".
    pub name: String,
    /// Where notifications are POSTed (JSON).
    pub url: String,
    /// Signs each body with HMAC-SHA256 in `X-Incidentd-Signature: sha256=<hex>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Per-attempt timeout.
    #[serde(with = "humantime_serde", default = "default_webhook_timeout")]
    pub timeout: Duration,
    /// Attempts after the first, with exponential backoff.
    #[serde(default = "default_webhook_retries")]
    pub max_retries: u32,
    /// First backoff; doubles per retry.
    #[serde(with = "humantime_serde", default = "default_webhook_backoff")]
    pub initial_backoff: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_webhook_retries() -> u32 {
    5
}

fn default_webhook_backoff() -> Duration {
    Duration::from_millis(500)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where shards keep their snapshots: `local` (files in
    /// `server.data_dir`) or `redis` (shared by replicas, fenced per shard).
    pub kind: StoreKind,
    /// Redis to use when `kind = "redis"`, e.g. `redis://127.0.0.1:6390`
    /// or `redis://:password@host:6379/0`.
    pub redis_url: String,
    /// Longest wait for a connection to Redis, at start and on reconnect.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for one Redis command (one flush, one page of a restore).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// How long an archived incident is kept in Redis before it expires.
    #[serde(with = "humantime_serde")]
    pub archive_ttl: Duration,
    /// First part of every Redis key, so several deployments can share one
    /// Redis: `<key_prefix>:{shard-N}:live`.
    pub key_prefix: String,
    /// What replicas write to Redis during a rolling upgrade. `current`:
    /// this build's formats. `2026-11-28`: only what builds from 2026-11-28
    /// read, so replicas of such a build can run beside this one (or the
    /// cluster can roll back to one). Set it for the upgrade's rollout, and
    /// set `current` again in a second rollout once no older replica is
    /// left. Only with `kind = "redis"`.
    pub write_formats: WriteFormats,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            redis_url: "redis://127.0.0.1:6390".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            archive_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            key_prefix: "incidentd".into(),
            write_formats: WriteFormats::Current,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Local,
    Redis,
}

/// The stored forms a replica writes (`store.write_formats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteFormats {
    #[serde(rename = "current")]
    Current,
    /// Snapshot format 3 without counts frames, and summaries as JSON:
    /// builds from before 2026-11-29 read no counts frames (they
    /// quarantine the incident) and no binary summaries.
    #[serde(rename = "2026-11-28")]
    Of20261128,
}

impl WriteFormats {
    /// Whether an incident that took only duplicates may be stored as a
    /// counts frame.
    pub fn counts_frames(self) -> bool {
        self == WriteFormats::Current
    }

    /// Whether summaries are stored in their binary form, not JSON.
    pub fn binary_summaries(self) -> bool {
        self == WriteFormats::Current
    }
}
