use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Engine settings: the `[engine]` table of the service config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Number of shards; 0 means one per CPU core. With Kafka this must equal
    /// the partition count of the keyed alerts topic.
    pub shards: usize,
    /// Alerts a shard may hold that are not yet durable; beyond it `submit`
    /// answers "busy" (HTTP 503) and stream sources pause.
    pub shard_capacity: usize,
    /// Group commit: the shortest time from the start of one commit of a
    /// shard's changes to the start of its next. A quiet shard commits at
    /// once; under load each commit takes everything that arrived while the
    /// last one ran. 0 (the default) starts the next as soon as the last one
    /// finished; more trades latency for fewer, larger store writes (each
    /// commit costs the store a transaction: worth spacing on a busy disk).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Most distinct alerts kept per incident; more are counted, not kept.
    pub max_alerts_per_incident: usize,
    /// Most timeline entries kept per incident; older ones are dropped.
    pub max_timeline_entries: usize,
    /// A resolved incident with no change for this long is archived.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A shard that takes over incidents (at start, or from another replica)
    /// publishes again each one's last escalation step fired within this
    /// window, with its original event id and idempotency key: the previous
    /// owner may have died before delivering it. 0s turns this off.
    #[serde(with = "humantime_serde")]
    pub redeliver_escalations_within: Duration,
    pub passivation: PassivationSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            shards: 0,
            shard_capacity: 50_000,
            flush_interval: Duration::ZERO,
            max_alerts_per_incident: 1_000,
            max_timeline_entries: 200,
            retention: Duration::from_secs(24 * 3600),
            redeliver_escalations_within: Duration::from_secs(60),
            passivation: PassivationSettings::default(),
        }
    }
}

/// Quiet incidents stop their actor and wait, encoded, in the shard until
/// their next alert, command or timer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassivationSettings {
    pub enabled: bool,
    /// An incident with no input for this long is passivated...
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// ...unless one of its deadlines falls within this horizon.
    #[serde(with = "humantime_serde")]
    pub timer_horizon: Duration,
    /// How often a shard looks for incidents to passivate.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Most incident actors a shard keeps running while passivation is on
    /// (about 13 KB each, against about 2 KB for a passivated incident).
    /// Once this many run, alerts and due timers no longer wake a
    /// passivated incident: the shard applies them to its encoded state and
    /// keeps it passivated, so a storm that touches a million incidents
    /// within `idle_after` holds no more actors than this (each such update
    /// counts in `incidentd_incidents_updated_while_passive_total`).
    /// Commands still wake incidents; past the cap the shard passivates its
    /// least recently used incidents down to nine tenths of it, however
    /// recent their input once it is stored. Incidents with a deadline
    /// within `timer_horizon`, or with input not yet stored (while the
    /// store fails), stay running; the commit that ends an outage starts a
    /// sweep back down.
    pub max_resident: usize,
}

impl Default for PassivationSettings {
    fn default() -> Self {
        PassivationSettings {
            enabled: true,
            idle_after: Duration::from_secs(60),
            timer_horizon: Duration::from_secs(30),
            check_interval: Duration::from_secs(30),
            max_resident: 50_000,
        }
    }
}

impl EngineSettings {
    /// The shard count to use on this machine.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}
