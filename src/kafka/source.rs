//! Turning the input of one alert-topic message into keyed records: one
//! per shard its alerts and acknowledges land on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use incidentd_actors::model::{Alert, Command};
use incidentd_actors::Engine;

use super::producer::Keyed;
use super::record::{KeyedRecord, Origin};
use super::telemetry;
use super::worker::WorkerShared;
use crate::ingest::{decode_source, SourceFormat, SourceInput};

/// Longest pause between attempts to decode a held message.
const MAX_HOLD_DELAY: Duration = Duration::from_secs(1);

/// Decodes one message of `topic`, holding it while the PagerDuty key store
/// cannot be asked (and so the caller's whole input, to keep order): the
/// message is fine, only not decodable yet, so it must not be dead-lettered.
/// None once `stop` is set; the message is then read again by whoever reads
/// its partition next.
pub async fn decode_held(
    shared: &WorkerShared,
    topic: &str,
    format: SourceFormat,
    payload: &[u8],
    stop: &AtomicBool,
) -> Option<SourceInput> {
    let mut delay = Duration::from_millis(10);
    loop {
        match decode_source(format, payload, &shared.default_tenant, &shared.pagerduty).await {
            Ok(input) => return Some(input),
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                telemetry::consumed(topic, "held", 1);
                tracing::warn!(%topic, error = %e, retry_in = ?delay, "message held: it cannot be decoded until the store answers");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_HOLD_DELAY);
            }
        }
    }
}

impl SourceInput {
    /// One keyed record per shard that any alert's routes land on (holding
    /// those alerts, in order), and one per shard of each acknowledge;
    /// `origin` is where the message was read, if from a topic, and
    /// `source_timestamp` its Kafka timestamp (ms).
    pub fn into_records(
        self,
        engine: &Engine,
        origin: Option<Origin>,
        source_timestamp: Option<i64>,
    ) -> Vec<Keyed> {
        let mut per_shard: BTreeMap<usize, Vec<Alert>> = BTreeMap::new();
        for alert in self.alerts {
            // Copies only for the further shards of routes that continue:
            // nearly every alert lands on one shard and moves there.
            let shards = engine.shards_of(&alert);
            let Some((&last, others)) = shards.split_last() else {
                continue;
            };
            for &shard in others {
                per_shard.entry(shard).or_default().push(alert.clone());
            }
            per_shard.entry(last).or_default().push(alert);
        }
        let mut records: Vec<Keyed> = per_shard
            .into_iter()
            .map(|(shard, alerts)| Keyed {
                shard,
                key: origin
                    .as_ref()
                    .map(|o| format!("{}/{}", o.source, o.offset))
                    .unwrap_or_else(|| alerts[0].fingerprint.to_string()),
                record: KeyedRecord::Alerts {
                    alerts,
                    origin: origin.clone(),
                },
                source_timestamp,
            })
            .collect();
        for (probe, actor) in self.acknowledges {
            for shard in engine.shards_of(&probe) {
                records.push(Keyed {
                    shard,
                    key: probe.fingerprint.to_string(),
                    record: KeyedRecord::GroupCommand {
                        probe: probe.clone(),
                        command: Command::Acknowledge,
                        actor: actor.clone(),
                    },
                    source_timestamp,
                });
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use incidentd_actors::model::Labels;
    use incidentd_actors::ports::memory::{CollectingSink, MemoryStore};
    use incidentd_actors::ports::TokioClock;
    use incidentd_actors::routing::RouteConfig;
    use incidentd_actors::{compile_rules, EngineSettings, Ports};

    use super::*;

    /// Routes by team: `db` alerts also continue into the `all` tenant,
    /// so they land on two groups (and, with 64 shards, two shards).
    fn engine() -> Engine {
        let routing: RouteConfig = toml::from_str(
            r#"
            group_by = ["alertname"]
            [[routes]]
            id = "db"
            matchers = ['team="db"']
            continue = true
            [[routes]]
            id = "all"
            tenant = "all"
            "#,
        )
        .unwrap();
        let (tree, policies) = compile_rules(&routing, Vec::new()).unwrap();
        let settings = EngineSettings {
            shards: 64,
            ..EngineSettings::default()
        };
        let ports = Ports {
            store: Arc::new(MemoryStore::default()),
            sink: Arc::new(CollectingSink::default()),
            clock: Arc::new(TokioClock::new()),
        };
        Engine::without_shards(settings, tree, policies, ports)
    }

    fn alert(name: &str, team: &str) -> Alert {
        let labels = Labels::from([
            ("alertname".into(), name.into()),
            ("team".into(), team.into()),
        ]);
        Alert::firing(labels)
    }

    #[test]
    fn each_shard_an_alert_s_routes_land_on_gets_it_once_in_order() {
        let engine = engine();
        let input = SourceInput {
            alerts: vec![alert("A", "db"), alert("B", "web"), alert("C", "db")],
            ..SourceInput::default()
        };
        let mut expected: BTreeMap<usize, Vec<Alert>> = BTreeMap::new();
        for alert in &input.alerts {
            let shards = engine.shards_of(alert);
            let routes = if alert.labels["team"] == "db" { 2 } else { 1 };
            assert_eq!(
                shards.len(),
                routes,
                "{shards:?}: pick names on distinct shards"
            );
            for shard in shards {
                expected.entry(shard).or_default().push(alert.clone());
            }
        }
        let records = input.into_records(&engine, None, None);
        let shards: BTreeSet<usize> = records.iter().map(|r| r.shard).collect();
        assert_eq!(shards.len(), records.len(), "one record per shard");
        let got: BTreeMap<usize, Vec<Alert>> = records
            .into_iter()
            .map(|keyed| match keyed.record {
                KeyedRecord::Alerts { alerts, .. } => (keyed.shard, alerts),
                other => panic!("not alerts: {other:?}"),
            })
            .collect();
        assert_eq!(got, expected);
    }
}
