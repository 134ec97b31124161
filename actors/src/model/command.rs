use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{IncidentId, IncidentStatus, Labels, Severity, Timestamp};

/// Something a person (or an integration) asks of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Acknowledge,
    Unacknowledge,
    Resolve,
    Reopen,
    Assign { assignee: Option<String> },
    AddNote { text: String },
    EscalateNow,
    Snooze { until: Timestamp },
    ChangeSeverity { severity: Severity },
    ChangeTitle { title: String },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Acknowledge => "acknowledge",
            Command::Unacknowledge => "unacknowledge",
            Command::Resolve => "resolve",
            Command::Reopen => "reopen",
            Command::Assign { .. } => "assign",
            Command::AddNote { .. } => "add_note",
            Command::EscalateNow => "escalate",
            Command::Snooze { .. } => "snooze",
            Command::ChangeSeverity { .. } => "change_severity",
            Command::ChangeTitle { .. } => "change_title",
        }
    }
}

/// A manually opened incident (no alert behind it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewIncident {
    pub tenant: String,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub labels: Labels,
}

/// Why a command was refused. A refused command changes nothing and emits nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("incident {0} not found")]
    NotFound(IncidentId),
    #[error("cannot {command} incident {id}: it is {status}; {hint}", status = status.as_str())]
    NotApplicable {
        id: IncidentId,
        command: &'static str,
        status: IncidentStatus,
        hint: &'static str,
    },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("engine unavailable: {0}")]
    Unavailable(String),
}
