use std::path::{Path, PathBuf};

use incidentd_actors::compile_rules;
use thiserror::Error;

use super::{Config, StoreConfig, StoreKind, WriteFormats};

/// Settings given on the command line; they win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<std::net::SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Rules(Vec<String>),
}

const ENV_PREFIX: &str = "INCIDENTD__";

/// Builds the configuration from its layers and checks it whole.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let mut tree = match file {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    apply_env(&mut tree, env)?;
    let source = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("<defaults and environment>"));
    let mut config: Config =
        toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: source,
                message: e.to_string(),
            })?;
    if let Some(listen) = flags.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = &flags.data_dir {
        config.server.data_dir = dir.clone();
    }
    validate(&config)?;
    Ok(config)
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// `INCIDENTD__SERVER__LISTEN=127.0.0.1:9000` sets `server.listen`. A value
/// is read as a TOML literal when it is one (`5`, `true`, `["a"]`), else as
/// a string.
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                name,
                message: "expected INCIDENTD__SECTION__KEY".into(),
            });
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let (last, parents) = keys.split_last().expect("split yields at least one key");
        let mut table = &mut *tree;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
                name: name.clone(),
                message: format!("{key} is not a table"),
            })?;
        }
        table.insert(last.clone(), value);
    }
    Ok(())
}

/// Checks what serde cannot: the routing tree, policies and channels together.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut errors = match compile_rules(&config.routing, config.escalation_policies.clone()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    let mut channels: Vec<&str> = config
        .notifier
        .webhooks
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    if config.notifier.log {
        channels.push("log");
    }
    for policy in &config.escalation_policies {
        for (i, step) in policy.steps.iter().enumerate() {
            for channel in &step.channels {
                if !channels.contains(&channel.as_str()) {
                    errors.push(format!(
                        "escalation policy {:?}: steps[{i}] uses channel {channel:?}, which is not configured (known: {})",
                        policy.id,
                        channels.join(", ")
                    ));
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for webhook in &config.notifier.webhooks {
        if !seen.insert(webhook.name.as_str()) || webhook.name == "log" {
            errors.push(format!(
                "notifier.webhooks: channel name {:?} is used twice (or is the built-in \"log\")",
                webhook.name
            ));
        }
        if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
            errors.push(format!(
                "notifier.webhooks {:?}: url {:?} must start with http:// or https://",
                webhook.name, webhook.url
            ));
        }
    }
    if config.server.body_limit_bytes == 0 || config.server.pagerduty_body_limit_bytes == 0 {
        errors.push("server: body limits must be above zero".into());
    }
    if config.engine.passivation.max_resident == 0 {
        errors.push("engine.passivation.max_resident must be above zero".into());
    }
    if config.ingest.pagerduty_key_ttl.is_zero() {
        // Every acknowledge and resolve would find its key expired.
        errors.push("ingest.pagerduty_key_ttl must be above zero".into());
    }
    errors.extend(store_errors(&config.store));
    errors.extend(config.kafka.errors());
    errors.extend(config.subscriptions.errors());
    errors.extend(config.pulsar.errors());
    for sink in &config.events.kafka {
        if sink.topic.is_empty() {
            errors.push("events.kafka: topic must not be empty".into());
        }
        if sink.brokers.is_empty() && !config.kafka.enabled() {
            errors.push(format!(
                "events.kafka {:?}: no brokers (set its brokers or kafka.brokers)",
                sink.topic
            ));
        }
        if sink.produce_timeout.is_zero() || sink.max_backlog == 0 {
            errors.push(format!(
                "events.kafka {:?}: produce_timeout and max_backlog must be above zero",
                sink.topic
            ));
        }
    }
    for sink in &config.events.pulsar {
        errors.extend(pulsar_url_error(
            &format!("events.pulsar {:?}: url", sink.topic),
            &sink.url,
        ));
        if sink.topic.is_empty()
            || sink.produce_timeout.is_zero()
            || sink.batch_size == 0
            || sink.max_backlog == 0
        {
            errors.push(format!(
                "events.pulsar {:?}: topic, produce_timeout, batch_size and max_backlog must be set and above zero",
                sink.topic
            ));
        }
    }
    if config.kafka.enabled() && config.store.kind != StoreKind::Redis {
        errors.push("kafka: cluster mode needs store.kind = \"redis\" (shards move between replicas with their snapshots)".into());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Rules(errors))
    }
}

/// The problem with a Pulsar service URL, if any; `setting` names it.
pub fn pulsar_url_error(setting: &str, url: &str) -> Option<String> {
    let valid = url.starts_with("pulsar://") || url.starts_with("pulsar+ssl://");
    (!valid).then(|| format!("{setting} {url:?} must start with pulsar:// or pulsar+ssl://"))
}

/// The Redis settings are checked even with `kind = "local"`, so switching
/// kinds never reveals an old mistake.
fn store_errors(store: &StoreConfig) -> Vec<String> {
    let mut errors = Vec::new();
    // The embedded store has one replica, and builds from before
    // 2026-11-29 cannot open its data directory at all: older formats
    // would buy no upgrade or rollback there.
    if store.kind == StoreKind::Local && store.write_formats != WriteFormats::Current {
        errors.push(
            "store.write_formats is for replicas sharing Redis during a rolling upgrade; with kind = \"local\" leave it \"current\"".into(),
        );
    }
    if !store.redis_url.starts_with("redis://") {
        errors.push(format!(
            "store.redis_url {:?} must start with redis://",
            store.redis_url
        ));
    }
    if store.connect_timeout.is_zero() || store.command_timeout.is_zero() {
        errors.push("store: connect_timeout and command_timeout must be above zero".into());
    }
    // Redis expires keys in whole seconds (SET ... EX).
    if store.archive_ttl.as_secs() == 0 {
        errors.push("store.archive_ttl must be at least 1s".into());
    }
    // Braces would change the Redis Cluster hash tag that keeps a shard's
    // keys in one slot.
    if store.key_prefix.is_empty() || store.key_prefix.contains(['{', '}']) {
        errors.push(format!(
            "store.key_prefix {:?} must be non-empty and contain no braces",
            store.key_prefix
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    /// Why the config file `text` is refused.
    fn refusal(text: &str) -> String {
        let file = write(text);
        load(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        let file = write("[server]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/x\"\nbody_limit_bytes = 10\n");
        let flags = Overrides {
            listen: None,
            data_dir: Some("/tmp/flag".into()),
        };
        let config = load(
            Some(file.path()),
            env(&[
                ("INCIDENTD__SERVER__BODY_LIMIT_BYTES", "20"),
                ("INCIDENTD__ENGINE__SHARDS", "3"),
                ("OTHER", "x"),
            ]),
            &flags,
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 9000, "from the file");
        assert_eq!(config.server.body_limit_bytes, 20, "env beats the file");
        assert_eq!(config.engine.shards, 3);
        assert_eq!(
            config.server.data_dir,
            PathBuf::from("/tmp/flag"),
            "flags beat everything"
        );
        assert_eq!(
            config.server.pagerduty_body_limit_bytes,
            512 * 1024,
            "untouched default"
        );
    }

    #[test]
    fn typos_are_rejected_with_the_key() {
        let file = write("[server]\nlisen = \"127.0.0.1:9000\"\n");
        let err = load(Some(file.path()), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = load(
            None,
            env(&[("INCIDENTD__ENGINE__SHARDZ", "2")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("shardz"), "{err}");
    }

    #[test]
    fn event_topics_need_a_pulsar_url_and_room_for_a_backlog() {
        let err = refusal(
            r#"
            [[events.kafka]]
            topic = "k"
            brokers = "127.0.0.1:9192"
            max_backlog = 0
            [[events.pulsar]]
            url = "http://broker:6650"
            topic = "p"
            max_backlog = 0
            "#,
        );
        for expected in [
            "events.kafka \"k\": produce_timeout and max_backlog must be above zero",
            "events.pulsar \"p\": url \"http://broker:6650\" must start with pulsar://",
            "events.pulsar \"p\": topic, produce_timeout, batch_size and max_backlog",
        ] {
            assert!(err.contains(expected), "{expected:?} missing in: {err}");
        }
    }

    #[test]
    fn rules_and_channels_are_checked_together() {
        let err = refusal(
            r#"
            [routing]
            policies = { critical = "missing" }
            [[escalation_policies]]
            id = "p"
            [[escalation_policies.steps]]
            escalate_after = "5m"
            targets = ["user:a"]
            channels = ["pager"]
            "#,
        );
        assert!(
            err.contains("unknown escalation policy \"missing\""),
            "{err}"
        );
        assert!(
            err.contains("uses channel \"pager\", which is not configured"),
            "{err}"
        );
    }

    #[test]
    fn store_settings_are_checked() {
        let err = refusal(
            "[store]\nkind = \"redis\"\nredis_url = \"http://x\"\ncommand_timeout = \"0s\"\narchive_ttl = \"10ms\"\nkey_prefix = \"a{b}\"\n",
        );
        for expected in [
            "must start with redis://",
            "must be above zero",
            "archive_ttl must be at least 1s",
            "contain no braces",
        ] {
            assert!(err.contains(expected), "{expected:?} missing in: {err}");
        }
    }

    #[test]
    fn older_write_formats_are_for_redis_only() {
        let older = "[store]\nwrite_formats = \"2026-11-28\"\n";
        let redis = write(&format!("{older}kind = \"redis\"\n"));
        let config = load(Some(redis.path()), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.store.write_formats, WriteFormats::Of20261128);

        let err = refusal(older);
        assert!(
            err.contains("store.write_formats is for replicas sharing Redis"),
            "{err}"
        );

        let err = refusal("[store]\nwrite_formats = \"2026-11-01\"\n");
        assert!(err.contains("2026-11-01"), "{err}");
    }

    #[test]
    fn a_zero_pagerduty_key_ttl_or_resident_cap_is_refused() {
        let err = refusal(
            "[ingest]\npagerduty_key_ttl = \"0s\"\n[engine.passivation]\nmax_resident = 0\n",
        );
        for expected in [
            "ingest.pagerduty_key_ttl must be above zero",
            "engine.passivation.max_resident must be above zero",
        ] {
            assert!(err.contains(expected), "{expected:?} missing in: {err}");
        }
    }

    #[test]
    fn shipped_config_files_are_valid() {
        let root = crate::test_support::checkout::checkout_dir();
        let default = root.join("config/default.toml");
        let parsed = load(Some(&default), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            parsed,
            Config::default(),
            "config/default.toml must spell out the built-in defaults"
        );
        for entry in std::fs::read_dir(root.join("config/examples")).unwrap() {
            let path = entry.unwrap().path();
            load(Some(&path), env(&[]), &Overrides::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}
