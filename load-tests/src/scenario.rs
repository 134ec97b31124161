//! The scenario file: what to send, where, how fast and for how long.
//!
//! TOML, unknown keys are errors. Every scenario is bounded: `duration` is
//! at most [`MAX_DURATION`], the drain after it at most [`MAX_DRAIN`], and
//! all traffic stays on the loopback interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// Longest send phase a scenario may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Longest wait for outstanding events after the send phase.
pub const MAX_DRAIN: Duration = Duration::from_secs(30);

/// How alerts reach the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `POST /api/v2/alerts`, a JSON array of `batch_size` alerts.
    AlertmanagerV2,
    /// `POST /v2/enqueue`, one PagerDuty Events v2 event per request.
    Pagerduty,
    /// `POST /api/v1/alerts`, NDJSON, `batch_size` alerts per request.
    NativeNdjson,
    /// Native JSON arrays of `batch_size` alerts, one message each, to
    /// `kafka_topic`.
    Kafka,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AlertmanagerV2 => "alertmanager_v2",
            Mode::Pagerduty => "pagerduty",
            Mode::NativeNdjson => "native_ndjson",
            Mode::Kafka => "kafka",
        }
    }
}

/// One load scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080`. Must be a
    /// loopback address (127.0.0.1, localhost or [::1]). Its SSE stream is
    /// read in every mode; HTTP modes also send to it.
    pub target: String,
    /// How alerts are sent.
    pub mode: Mode,
    /// Kafka mode: bootstrap servers, `host:port[,host:port]`, host 127.0.0.1.
    #[serde(default)]
    pub kafka_brokers: Option<String>,
    /// Kafka mode: the alert topic the service reads (a `kafka.sources` topic
    /// with format `native`).
    #[serde(default)]
    pub kafka_topic: Option<String>,
    /// Alerts per second; 0 = as fast as the service (or broker) takes them.
    #[serde(default)]
    pub rate: u64,
    /// Length of the send phase, e.g. "30s" (at most 10 minutes).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Alerts per request (HTTP) or per message (Kafka); ignored by
    /// `pagerduty`, which sends one event per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Requests in flight (HTTP) or messages awaiting broker acknowledgement
    /// (Kafka).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Distinct group keys (alertnames) over the run. Groups are opened
    /// evenly over the send phase, so latency is sampled throughout it.
    #[serde(default = "default_groups")]
    pub groups: u64,
    /// Distinct fingerprints (`instance` label values) per group.
    #[serde(default = "default_fingerprints")]
    pub fingerprints_per_group: u64,
    /// Alerts in a row that go to one group (after the alert that opens
    /// it): 1 (the default) sends each alert to a random open group, so a
    /// batch touches about as many incidents as it has alerts; 10 sends
    /// runs of ten, as Prometheus sends a rule's alerts together.
    #[serde(default = "default_group_run")]
    pub group_run: u64,
    /// Fraction (0..1) of alerts that repeat an already-sent fingerprint.
    #[serde(default)]
    pub duplicate_ratio: f64,
    /// Fraction (0..1) of alerts sent as resolved (of an already-sent
    /// fingerprint).
    #[serde(default)]
    pub resolve_ratio: f64,
    /// Severity of every alert: critical, error, warning or info.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Wait after the send phase for outstanding events (at most 30 s).
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Per-request timeout (HTTP) or delivery timeout (Kafka).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Seed of the alert generator (random when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Read the target's SSE stream to time each group's `created` event.
    /// false for a target that has none (Prometheus Alertmanager, in the
    /// comparison run): then only acknowledgements are timed.
    #[serde(default = "default_observe")]
    pub observe: bool,
    /// With `observe`: time `created` events where the service publishes
    /// them to a broker topic (its `[[events.kafka]]` or `[[events.pulsar]]`)
    /// instead of on SSE, i.e. from send to consumed through the broker.
    /// `{ broker = "kafka", brokers = "127.0.0.1:9192", topic = "..." }` or
    /// `{ broker = "pulsar", url = "pulsar://127.0.0.1:6660", topic = "..." }`.
    #[serde(default)]
    pub events_topic: Option<EventsTopic>,
}

/// A broker topic of the service's incident events (CloudEvents JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "broker", rename_all = "snake_case")]
pub enum EventsTopic {
    Kafka { brokers: String, topic: String },
    Pulsar { url: String, topic: String },
}

fn default_batch_size() -> usize {
    100
}
fn default_concurrency() -> usize {
    8
}
fn default_groups() -> u64 {
    1000
}
fn default_fingerprints() -> u64 {
    10
}
fn default_group_run() -> u64 {
    1
}
fn default_observe() -> bool {
    true
}

fn default_severity() -> String {
    "critical".into()
}
fn default_drain() -> Duration {
    Duration::from_secs(15)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The target as a URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.target.trim_end_matches('/').to_string()
    }

    /// Alerts per request or message, as actually sent.
    pub fn effective_batch(&self) -> usize {
        match self.mode {
            Mode::Pagerduty => 1,
            _ => self.batch_size,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        check_loopback_url(&self.target)?;
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            bail!("duration must be more than 0 and at most 10m");
        }
        if self.drain_timeout > MAX_DRAIN {
            bail!("drain_timeout must be at most 30s");
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(60) {
            bail!("request_timeout must be more than 0 and at most 60s");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            bail!("batch_size must be 1..=10000");
        }
        if !(1..=4096).contains(&self.concurrency) {
            bail!("concurrency must be 1..=4096");
        }
        if self.groups == 0 || self.fingerprints_per_group == 0 || self.group_run == 0 {
            bail!("groups, fingerprints_per_group and group_run must be at least 1");
        }
        for (name, value) in [
            ("duplicate_ratio", self.duplicate_ratio),
            ("resolve_ratio", self.resolve_ratio),
        ] {
            if !(0.0..=1.0).contains(&value) {
                bail!("{name} must be between 0 and 1");
            }
        }
        if self.duplicate_ratio + self.resolve_ratio > 1.0 {
            bail!("duplicate_ratio + resolve_ratio must be at most 1");
        }
        if !["critical", "error", "warning", "info"].contains(&self.severity.as_str()) {
            bail!("severity must be one of critical, error, warning, info");
        }
        let kafka_fields = self.kafka_brokers.is_some() || self.kafka_topic.is_some();
        match self.mode {
            Mode::Kafka => {
                let brokers = self
                    .kafka_brokers
                    .as_deref()
                    .context("mode kafka needs kafka_brokers")?;
                check_brokers(brokers)?;
                if self.kafka_topic.as_deref().unwrap_or("").is_empty() {
                    bail!("mode kafka needs kafka_topic");
                }
            }
            _ if kafka_fields => bail!("kafka_brokers and kafka_topic are for mode kafka only"),
            _ => {}
        }
        match &self.events_topic {
            Some(EventsTopic::Kafka { brokers, .. }) => check_brokers(brokers)?,
            Some(EventsTopic::Pulsar { url, .. }) => {
                let parsed =
                    Url::parse(url).with_context(|| format!("pulsar url {url:?} is not a URL"))?;
                if parsed.scheme() != "pulsar" || !is_loopback(parsed.host_str().unwrap_or("")) {
                    bail!("pulsar url {url:?} must be pulsar:// on a loopback address");
                }
            }
            None => {}
        }
        Ok(())
    }
}

fn check_loopback_url(target: &str) -> anyhow::Result<()> {
    let url = Url::parse(target).with_context(|| format!("target {target:?} is not a URL"))?;
    if url.scheme() != "http" {
        bail!("target must be http://");
    }
    if !is_loopback(url.host_str().unwrap_or("")) {
        bail!("target {target:?} is not a loopback address (127.0.0.1, localhost or [::1])");
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || matches!(
            host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>(),
            Ok(ip) if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
        )
}

fn check_brokers(brokers: &str) -> anyhow::Result<()> {
    for broker in brokers.split(',') {
        let host = broker
            .trim()
            .rsplit_once(':')
            .map(|(host, _)| host)
            .unwrap_or("");
        if host.parse::<IpAddr>().ok() != Some(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
            bail!("kafka broker {broker:?} is not 127.0.0.1:<port>");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
        target = "http://127.0.0.1:18080"
        mode = "alertmanager_v2"
        rate = 1000
        duration = "20s"
    "#;

    #[test]
    fn every_shipped_scenario_parses() {
        // The checkout running the test (not the one that compiled it: a shared
        // target dir can hand one checkout's test binary to another).
        let dir =
            std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
                .join("scenarios");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            checked += 1;
        }
        assert!(
            checked >= 6,
            "only {checked} scenarios in {}",
            dir.display()
        );
    }

    #[test]
    fn parses_with_defaults() {
        let s = Scenario::parse(OK).unwrap();
        assert_eq!(s.mode, Mode::AlertmanagerV2);
        assert_eq!(s.duration, Duration::from_secs(20));
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.severity, "critical");
    }

    #[test]
    fn rejects_typos() {
        let err = Scenario::parse(&format!("{OK}\nbatch_sise = 10")).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        assert!(Scenario::parse(&OK.replace("alertmanager_v2", "alertmanager")).is_err());
    }

    #[test]
    fn accepts_only_loopback_targets() {
        for ok in [
            "http://localhost:1",
            "http://[::1]:8080/",
            "http://127.0.0.1",
        ] {
            Scenario::parse(&OK.replace("http://127.0.0.1:18080", ok)).unwrap();
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://127.0.0.2:8080",
            "http://example.com",
            "http://localhost.example.com",
            "https://127.0.0.1",
            "not a url",
        ] {
            assert!(
                Scenario::parse(&OK.replace("http://127.0.0.1:18080", bad)).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn bounds_time_and_ratios() {
        assert!(Scenario::parse(&OK.replace("\"20s\"", "\"11m\"")).is_err());
        assert!(Scenario::parse(&format!("{OK}\ndrain_timeout = \"31s\"")).is_err());
        assert!(Scenario::parse(&format!("{OK}\nduplicate_ratio = 1.5")).is_err());
        assert!(
            Scenario::parse(&format!("{OK}\nduplicate_ratio = 0.6\nresolve_ratio = 0.6")).is_err()
        );
    }

    #[test]
    fn kafka_needs_local_brokers_and_topic() {
        let kafka = OK.replace("alertmanager_v2", "kafka");
        assert!(Scenario::parse(&kafka).is_err());
        let ok = format!("{kafka}\nkafka_brokers = \"127.0.0.1:9192\"\nkafka_topic = \"alerts\"");
        Scenario::parse(&ok).unwrap();
        let remote = ok.replace("127.0.0.1:9192", "kafka.example:9092");
        assert!(Scenario::parse(&remote).is_err());
        let http_with_kafka = format!("{OK}\nkafka_topic = \"alerts\"");
        assert!(Scenario::parse(&http_with_kafka).is_err());
    }

    #[test]
    fn events_topics_must_be_local() {
        let pulsar = |url: &str| {
            format!("{OK}\n[events_topic]\nbroker = \"pulsar\"\nurl = \"{url}\"\ntopic = \"t\"")
        };
        Scenario::parse(&pulsar("pulsar://127.0.0.1:6660")).unwrap();
        assert!(Scenario::parse(&pulsar("pulsar://pulsar.example:6650")).is_err());
        assert!(Scenario::parse(&pulsar("http://127.0.0.1:6660")).is_err());
        let kafka = |brokers: &str| {
            format!(
                "{OK}\n[events_topic]\nbroker = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"t\""
            )
        };
        Scenario::parse(&kafka("127.0.0.1:9192")).unwrap();
        assert!(Scenario::parse(&kafka("kafka.example:9092")).is_err());
        assert!(Scenario::parse(&format!(
            "{OK}\n[events_topic]\nbroker = \"nats\"\ntopic = \"t\""
        ))
        .is_err());
    }
}
