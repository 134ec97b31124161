use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CompactString, IncidentId, IncidentSummary, Severity, Timestamp};

/// The kind of an incident change; also the suffix of the CloudEvents type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    AlertAdded,
    AlertResolved,
    Acknowledged,
    Unacknowledged,
    AckTimedOut,
    Escalated,
    Resolved,
    Reopened,
    Assigned,
    NoteAdded,
    SeverityChanged,
    TitleChanged,
    Snoozed,
    SnoozeExpired,
    Archived,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::Created,
        EventKind::AlertAdded,
        EventKind::AlertResolved,
        EventKind::Acknowledged,
        EventKind::Unacknowledged,
        EventKind::AckTimedOut,
        EventKind::Escalated,
        EventKind::Resolved,
        EventKind::Reopened,
        EventKind::Assigned,
        EventKind::NoteAdded,
        EventKind::SeverityChanged,
        EventKind::TitleChanged,
        EventKind::Snoozed,
        EventKind::SnoozeExpired,
        EventKind::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::AlertAdded => "alert_added",
            EventKind::AlertResolved => "alert_resolved",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Unacknowledged => "unacknowledged",
            EventKind::AckTimedOut => "ack_timed_out",
            EventKind::Escalated => "escalated",
            EventKind::Resolved => "resolved",
            EventKind::Reopened => "reopened",
            EventKind::Assigned => "assigned",
            EventKind::NoteAdded => "note_added",
            EventKind::SeverityChanged => "severity_changed",
            EventKind::TitleChanged => "title_changed",
            EventKind::Snoozed => "snoozed",
            EventKind::SnoozeExpired => "snooze_expired",
            EventKind::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// What changed, with the details a consumer needs to act on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Created {
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        fingerprint: Option<CompactString>,
    },
    AlertAdded {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        fingerprint: CompactString,
        severity: Severity,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        summary: CompactString,
        /// True when a known alert fired again (after resolving, or after
        /// its dedup window) rather than a new fingerprint joining.
        refire: bool,
    },
    AlertResolved {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        fingerprint: CompactString,
    },
    Acknowledged,
    Unacknowledged,
    AckTimedOut,
    Escalated {
        policy: String,
        step: u32,
        loop_index: u32,
        targets: Vec<String>,
        channels: Vec<String>,
        /// Incident id + step + loop: the same for a redelivery of the same
        /// step, so receivers can drop duplicates.
        idempotency_key: String,
    },
    Resolved {
        automatic: bool,
    },
    Reopened {
        reopen_count: u32,
    },
    Assigned {
        assignee: Option<String>,
    },
    NoteAdded {
        text: String,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
    },
    TitleChanged {
        from: String,
        to: String,
    },
    Snoozed {
        until: Timestamp,
    },
    SnoozeExpired,
    Archived,
}

impl Change {
    pub fn kind(&self) -> EventKind {
        match self {
            Change::Created { .. } => EventKind::Created,
            Change::AlertAdded { .. } => EventKind::AlertAdded,
            Change::AlertResolved { .. } => EventKind::AlertResolved,
            Change::Acknowledged => EventKind::Acknowledged,
            Change::Unacknowledged => EventKind::Unacknowledged,
            Change::AckTimedOut => EventKind::AckTimedOut,
            Change::Escalated { .. } => EventKind::Escalated,
            Change::Resolved { .. } => EventKind::Resolved,
            Change::Reopened { .. } => EventKind::Reopened,
            Change::Assigned { .. } => EventKind::Assigned,
            Change::NoteAdded { .. } => EventKind::NoteAdded,
            Change::SeverityChanged { .. } => EventKind::SeverityChanged,
            Change::TitleChanged { .. } => EventKind::TitleChanged,
            Change::Snoozed { .. } => EventKind::Snoozed,
            Change::SnoozeExpired => EventKind::SnoozeExpired,
            Change::Archived => EventKind::Archived,
        }
    }

    /// One line for the timeline.
    pub fn describe(&self) -> String {
        match self {
            Change::Created { .. } => "incident created".into(),
            Change::AlertAdded {
                fingerprint,
                summary,
                refire,
                ..
            } => {
                let verb = if *refire { "fired again" } else { "added" };
                format!("alert {fingerprint} {verb}: {summary}")
            }
            Change::AlertResolved { fingerprint } => format!("alert {fingerprint} resolved"),
            Change::Acknowledged => "acknowledged".into(),
            Change::Unacknowledged => "unacknowledged; escalation resumes".into(),
            Change::AckTimedOut => "acknowledgement timed out; escalation resumes".into(),
            Change::Escalated {
                policy,
                step,
                loop_index,
                targets,
                ..
            } => format!(
                "escalated: policy {policy} step {} loop {} to {}",
                step + 1,
                loop_index + 1,
                targets.join(", ")
            ),
            Change::Resolved { automatic: true } => "resolved automatically".into(),
            Change::Resolved { automatic: false } => "resolved".into(),
            Change::Reopened { reopen_count } => format!("reopened ({reopen_count} times so far)"),
            Change::Assigned { assignee: Some(a) } => format!("assigned to {a}"),
            Change::Assigned { assignee: None } => "unassigned".into(),
            Change::NoteAdded { text } => format!("note: {text}"),
            Change::SeverityChanged { from, to } => format!("severity {from} -> {to}"),
            Change::TitleChanged { to, .. } => format!("title set to {to:?}"),
            Change::Snoozed { until } => format!("snoozed until {until}"),
            Change::SnoozeExpired => "snooze expired; escalation restarts".into(),
            Change::Archived => "archived".into(),
        }
    }
}

/// One change to one incident. `seq` grows by one per incident, so a
/// consumer can detect gaps and duplicates; `id` is derived from the
/// incident and `seq`, so a re-sent event keeps its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentEvent {
    pub id: String,
    pub incident_id: IncidentId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub group_key: Arc<str>,
    pub seq: u64,
    pub time: Timestamp,
    pub kind: EventKind,
    /// Who caused it: a user from a command, or `system:<reason>`.
    pub actor: String,
    pub change: Change,
    /// The incident after the change.
    #[cfg_attr(feature = "openapi", schema(value_type = IncidentSummary))]
    pub incident: Arc<IncidentSummary>,
}

impl IncidentEvent {
    pub fn event_id(incident: IncidentId, seq: u64) -> String {
        format!("{incident}-{seq}")
    }

    pub fn service(&self) -> Option<&str> {
        self.incident.service.as_deref()
    }
}
