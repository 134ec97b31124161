use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::stable_hash::StableHash;
use super::{AlertStatus, CompactString, EventKind, Labels, Severity, Timestamp};
use crate::routing::RouteSettings;

/// Incident identifier: a ULID, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub Ulid);

impl IncidentId {
    /// A new id whose time part is `now`, so ids also sort under a paused clock.
    pub fn new(now: Timestamp) -> Self {
        IncidentId(Ulid::from_parts(now.millis().max(0) as u64, rand_bits()))
    }

    /// The id of the incident `record`'s alert opens for a group: its time
    /// part is the record's time, its random part a stable hash of the record
    /// and the group, so every replica replaying the record derives it again.
    pub(crate) fn opened_by(record: OpeningRecord, tenant: &str, group_key: &str) -> Self {
        let mut hash = StableHash::new();
        let high = hash
            .write(&record.hash.to_le_bytes())
            .write(tenant.as_bytes())
            .write(&[0])
            .write(group_key.as_bytes())
            .finish();
        // ULIDs carry 80 random bits: 16 more from hashing on.
        let low = hash.write(&[0xff]).finish() as u16;
        let random = (u128::from(high) << 16) | u128::from(low);
        IncidentId(Ulid::from_parts(record.time.millis().max(0) as u64, random))
    }
}

/// A stream record an alert was read from, reduced to what an id needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpeningRecord {
    pub time: Timestamp,
    /// Stable hash of where the record sits in its stream.
    pub hash: u64,
}

fn rand_bits() -> u128 {
    // Ulid::new() draws from the thread RNG; only its random part is kept.
    Ulid::new().random()
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for IncidentId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s)
            .map(IncidentId)
            .map_err(|e| format!("invalid incident id {s:?}: {e}"))
    }
}

/// In JSON an id is its 26-character ULID string.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for IncidentId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("ulid".into())))
            .description(Some("ULID, e.g. 01JDQ2X3Y4Z5A6B7C8D9E0F1G2"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for IncidentId {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Snoozed,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Triggered => "triggered",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Snoozed => "snoozed",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

impl FromStr for IncidentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "triggered" => Ok(IncidentStatus::Triggered),
            "acknowledged" => Ok(IncidentStatus::Acknowledged),
            "snoozed" => Ok(IncidentStatus::Snoozed),
            "resolved" => Ok(IncidentStatus::Resolved),
            other => Err(format!(
                "unknown status {other:?}: expected triggered, acknowledged, snoozed or resolved"
            )),
        }
    }
}

/// What the incident knows about one alert (by fingerprint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertState {
    pub status: AlertStatus,
    pub severity: Severity,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub summary: CompactString,
    /// How many times this fingerprint was received, duplicates included.
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// When this alert last produced an event; duplicates inside the dedup
    /// window measured from here produce none.
    pub last_event_at: Timestamp,
}

/// Where the escalation policy stands: the next step to fire, the loop it
/// belongs to, and when (`None` while escalation is stopped). Once the last
/// step of the last loop fired, `step` points past the end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationPosition {
    pub policy: Option<String>,
    /// Counts escalation (re)starts (creation, reopen, snooze expiry), so a
    /// restarted escalation gets fresh idempotency keys.
    pub run: u32,
    pub step: u32,
    pub loop_index: u32,
    pub next_at: Option<Timestamp>,
    /// Steps fired so far, over all loops.
    pub fired: u32,
    /// The step fired last, as its event said: a new owner of the incident
    /// publishes it again (same event id and idempotency key) when it fired
    /// recently, because the notification may have died queued with the
    /// previous owner. Stored after the incident by the snapshot codec.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub last_fired: Option<FiredStep>,
}

/// An escalation step that fired: its event's seq, time, actor, and the
/// fields of its `Change::Escalated` (kept flat: bincode cannot read the
/// internally tagged `Change`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FiredStep {
    pub seq: u64,
    pub at: Timestamp,
    pub actor: String,
    pub policy: String,
    pub step: u32,
    pub loop_index: u32,
    pub targets: Vec<String>,
    pub channels: Vec<String>,
    pub idempotency_key: String,
}

impl FiredStep {
    pub fn change(&self) -> super::Change {
        super::Change::Escalated {
            policy: self.policy.clone(),
            step: self.step,
            loop_index: self.loop_index,
            targets: self.targets.clone(),
            channels: self.channels.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub kind: EventKind,
    pub actor: String,
    pub message: String,
}

/// One incident: everything the engine keeps about it, and what a snapshot holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    pub id: IncidentId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub group_key: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub title: Arc<str>,
    pub severity: Severity,
    pub status: IncidentStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub team: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub assignee: Option<Arc<str>>,
    /// Labels every alert of the incident shares. Shared with its summaries
    /// (one is made at every commit): they change only when a new alert
    /// lacks one.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub labels: Arc<Labels>,
    /// Per-fingerprint state, capped; `dropped_alerts` counts what the cap refused.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, AlertState>))]
    pub alerts: BTreeMap<CompactString, AlertState>,
    /// How many of `alerts` are firing. Every event carries a summary that
    /// shows it, so it is kept up as alerts change rather than counted for
    /// each (3.6 % of a Kafka replica's CPU); not stored, counted again
    /// when an incident is decoded.
    #[serde(skip)]
    pub(crate) firing_alerts: u64,
    pub dropped_alerts: u64,
    /// Alerts received, duplicates included.
    pub total_alerts: u64,
    pub duplicate_alerts: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub reopen_count: u32,
    pub escalation: EscalationPosition,
    pub snoozed_until: Option<Timestamp>,
    /// When an acknowledged incident goes back to triggered if not resolved.
    pub ack_timeout_at: Option<Timestamp>,
    /// When an incident whose alerts are all resolved resolves itself.
    pub auto_resolve_at: Option<Timestamp>,
    /// When a resolved, quiet incident is archived and leaves the live set.
    pub archive_at: Option<Timestamp>,
    /// Set once the incident was archived; it takes no more input.
    pub archived: bool,
    /// Most recent entries, capped; `timeline_total` counts all ever written.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<TimelineEntry>))]
    pub timeline: VecDeque<TimelineEntry>,
    pub timeline_total: u64,
    /// Sequence number of the last event; the next one is `seq + 1`.
    pub seq: u64,
    /// Changes whenever a deadline changes, so a timer armed for an older
    /// deadline is recognised as stale and ignored.
    pub timer_generation: u64,
    /// The routing decisions this incident was created under.
    pub route: RouteSettings,
}

impl Incident {
    pub(crate) fn count_firing_alerts(&self) -> u64 {
        self.alerts
            .values()
            .filter(|a| a.status == AlertStatus::Firing)
            .count() as u64
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.escalation.next_at,
            self.snoozed_until,
            self.ack_timeout_at,
            self.auto_resolve_at,
            self.archive_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn summary(&self) -> IncidentSummary {
        debug_assert_eq!(
            self.firing_alerts,
            self.count_firing_alerts(),
            "the firing count of incident {} went astray",
            self.id
        );
        IncidentSummary {
            id: self.id,
            tenant: self.tenant.clone(),
            group_key: self.group_key.clone(),
            title: self.title.clone(),
            severity: self.severity,
            status: self.status,
            service: self.service.clone(),
            team: self.team.clone(),
            assignee: self.assignee.clone(),
            labels: self.labels.clone(),
            alert_count: self.alerts.len() as u64 + self.dropped_alerts,
            firing_alerts: self.firing_alerts,
            total_alerts: self.total_alerts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            acknowledged_at: self.acknowledged_at,
            resolved_at: self.resolved_at,
            reopen_count: self.reopen_count,
            seq: self.seq,
        }
    }
}

/// The compact view of an incident that lists and filters need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentSummary {
    pub id: IncidentId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub group_key: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub title: Arc<str>,
    pub severity: Severity,
    pub status: IncidentStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub team: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub assignee: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub labels: Arc<Labels>,
    /// Distinct alerts (fingerprints) ever part of the incident.
    pub alert_count: u64,
    pub firing_alerts: u64,
    pub total_alerts: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub reopen_count: u32,
    pub seq: u64,
}
