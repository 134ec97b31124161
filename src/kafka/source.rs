//! Turning the input of one alert-topic message into keyed records: one
//! per shard its alerts and acknowledges land on.

use std::collections::BTreeMap;

use incidentd_actors::model::{Alert, Command};
use incidentd_actors::Engine;

use super::producer::Keyed;
use super::record::{KeyedRecord, Origin};
use crate::ingest::SourceInput;

impl SourceInput {
    /// One keyed record per shard that any alert's routes land on (holding
    /// those alerts, in order), and one per shard of each acknowledge;
    /// `origin` is where the message was read, if from a topic.
    pub fn into_records(self, engine: &Engine, origin: Option<Origin>) -> Vec<Keyed> {
        let mut per_shard: BTreeMap<usize, Vec<Alert>> = BTreeMap::new();
        for alert in self.alerts {
            for shard in engine.shards_of(&alert) {
                per_shard.entry(shard).or_default().push(alert.clone());
            }
        }
        let mut records: Vec<Keyed> = per_shard
            .into_iter()
            .map(|(shard, alerts)| Keyed {
                shard,
                key: origin
                    .as_ref()
                    .map(|o| format!("{}/{}", o.source, o.offset))
                    .unwrap_or_else(|| alerts[0].fingerprint.clone()),
                record: KeyedRecord::Alerts {
                    alerts,
                    origin: origin.clone(),
                },
            })
            .collect();
        for (probe, actor) in self.acknowledges {
            for shard in engine.shards_of(&probe) {
                records.push(Keyed {
                    shard,
                    key: probe.fingerprint.clone(),
                    record: KeyedRecord::GroupCommand {
                        probe: probe.clone(),
                        command: Command::Acknowledge,
                        actor: actor.clone(),
                    },
                });
            }
        }
        records
    }
}
