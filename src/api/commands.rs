//! Changing an incident: one endpoint per engine command. Each answers with
//! the incident's summary after the change, once the change is stored.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use humantime_serde::re::humantime;
use incidentd_actors::model::{Command, IncidentId, IncidentSummary, Severity, Timestamp};
use serde::{Deserialize, Deserializer};

use super::actor::actor_of;
use super::error::{ApiError, ErrorBody};
use super::request;
use crate::intake::{Applied, QueuedBody};
use crate::state::AppState;

type Changed = Result<Applied, ApiError>;

async fn apply(state: &AppState, id: IncidentId, command: Command, actor: &str) -> Changed {
    Ok(state.intake.command(id, command, actor).await?)
}

/// Body of the commands that need nothing but who asked; may be left out.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    /// Who did it; defaults to the caller's token.
    pub actor: Option<String>,
}

/// The commands that need nothing but who asked them.
#[derive(Clone, Copy, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Escalation stops until unacknowledged or timed out.
    Acknowledge,
    /// Takes an acknowledgement back: escalation resumes.
    Unacknowledge,
    /// Escalation and timers stop.
    Resolve,
    /// A resolved incident opens again; escalation starts over.
    Reopen,
    /// Fires the next escalation step now instead of at its deadline.
    Escalate,
}

impl Lifecycle {
    fn command(self) -> Command {
        match self {
            Lifecycle::Acknowledge => Command::Acknowledge,
            Lifecycle::Unacknowledge => Command::Unacknowledge,
            Lifecycle::Resolve => Command::Resolve,
            Lifecycle::Reopen => Command::Reopen,
            Lifecycle::Escalate => Command::EscalateNow,
        }
    }
}

/// Acknowledge, unacknowledge, resolve, reopen or escalate an incident.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/{action}", tag = "commands",
    params(
        ("id" = String, Path, description = "Incident id (ULID)"),
        ("action" = Lifecycle, Path, description = "acknowledge, unacknowledge, resolve, reopen or escalate"),
    ),
    request_body(content = Option<ActorBody>, description = "Optional"),
    responses(
        (status = 200, description = "Changed and stored", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "Unknown incident or action", body = ErrorBody),
        (status = 409, description = "Does not apply now (e.g. resolving a resolved incident)", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn lifecycle(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Changed {
    let action: Lifecycle = serde_json::from_value(serde_json::Value::String(action.clone())).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no action {action:?}; use acknowledge, unacknowledge, resolve, reopen, escalate, snooze, assign or notes"),
        )
    })?;
    let id = request::incident_id(&id)?;
    let body: ActorBody = request::optional_json(body)?;
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    apply(&state, id, action.command(), &actor).await
}

/// Until when to snooze: exactly one of `until` and `duration`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    /// RFC 3339 time in the future.
    pub until: Option<Timestamp>,
    /// From now, e.g. `30m` or `2h 30m`.
    pub duration: Option<String>,
    pub actor: Option<String>,
}

impl SnoozeBody {
    fn until(&self, now: Timestamp) -> Result<Timestamp, ApiError> {
        match (&self.until, &self.duration) {
            (Some(until), None) => Ok(*until),
            (None, Some(text)) => {
                let duration: Duration = humantime::parse_duration(text).map_err(|e| {
                    ApiError::unprocessable(format!(
                        "duration {text:?} is not a duration such as 30m or 2h ({e})"
                    ))
                })?;
                Ok(now.plus(duration))
            }
            _ => Err(ApiError::unprocessable(
                "give exactly one of `until` (RFC 3339) and `duration` (e.g. 30m)",
            )),
        }
    }
}

/// Snoozes: escalation pauses until the time given, then restarts.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/snooze", tag = "commands",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    request_body = SnoozeBody,
    responses(
        (status = 200, description = "Snoozed and stored", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "Unknown incident", body = ErrorBody),
        (status = 409, description = "Resolved or already snoozed", body = ErrorBody),
        (status = 422, description = "Neither or both of until/duration, or a time not in the future", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn snooze(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Changed {
    let id = request::incident_id(&id)?;
    let body: SnoozeBody = request::json(body)?;
    let until = body.until(Timestamp::from_datetime(chrono::Utc::now()))?;
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    apply(&state, id, Command::Snooze { until }, &actor).await
}

/// Who the incident goes to; `null` unassigns. The field is required, so an
/// empty body cannot unassign by accident.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub assignee: Option<Option<String>>,
    pub actor: Option<String>,
}

/// Tells "given as null" (`Some(None)`) from "left out" (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Assigns the incident to someone, or unassigns it.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/assign", tag = "commands",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    request_body = AssignBody,
    responses(
        (status = 200, description = "Assigned and stored", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "Unknown incident", body = ErrorBody),
        (status = 409, description = "Already has that assignee", body = ErrorBody),
        (status = 422, description = "assignee missing or blank", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Changed {
    let id = request::incident_id(&id)?;
    let body: AssignBody = request::json(body)?;
    let Some(assignee) = body.assignee else {
        return Err(ApiError::unprocessable(
            "assignee is required: a name, or null to unassign",
        ));
    };
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    apply(&state, id, Command::Assign { assignee }, &actor).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub text: String,
    pub actor: Option<String>,
}

/// Adds a note to the timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", tag = "commands",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    request_body = NoteBody,
    responses(
        (status = 200, description = "Note stored", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "Unknown incident", body = ErrorBody),
        (status = 422, description = "text missing, blank or too long", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Changed {
    let id = request::incident_id(&id)?;
    let body: NoteBody = request::json(body)?;
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    apply(&state, id, Command::AddNote { text: body.text }, &actor).await
}

/// Fields to change; at least one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub severity: Option<Severity>,
    pub title: Option<String>,
    pub actor: Option<String>,
}

/// Changes severity and/or title. Each is its own command and event,
/// severity first; if the title is then refused, the severity change stays.
#[utoipa::path(patch, path = "/api/v1/incidents/{id}", tag = "commands",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Changed and stored", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "Unknown incident", body = ErrorBody),
        (status = 409, description = "It already has that severity or title", body = ErrorBody),
        (status = 422, description = "No field given, or an invalid one", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Changed {
    let id = request::incident_id(&id)?;
    let body: UpdateBody = request::json(body)?;
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    let mut commands = Vec::new();
    if let Some(severity) = body.severity {
        commands.push(Command::ChangeSeverity { severity });
    }
    if let Some(title) = body.title {
        commands.push(Command::ChangeTitle { title });
    }
    let mut changed = Err(ApiError::unprocessable(
        "give at least one of `severity` and `title`",
    ));
    for command in commands {
        changed = Ok(apply(&state, id, command, &actor).await?);
    }
    changed
}
