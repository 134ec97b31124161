//! Reading incidents (list, one, timeline) and opening one by hand.

use std::collections::VecDeque;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use incidentd_actors::decode_incident;
use incidentd_actors::model::{
    CommandError, Incident, IncidentId, IncidentSummary, Labels, NewIncident, Severity,
    TimelineEntry,
};
use serde::{Deserialize, Serialize};

use super::actor::actor_of;
use super::error::{ApiError, ErrorBody};
use super::list_query::{IncidentPage, ListQuery};
use super::request;
use crate::intake::{Applied, QueuedBody};
use crate::state::{AppState, Directory};

/// Lists live incidents, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    params(
        ("status" = Option<String>, Query, description = "triggered, acknowledged, snoozed or resolved; repeatable or comma-separated"),
        ("severity" = Option<String>, Query, description = "critical, error, warning or info; repeatable or comma-separated"),
        ("service" = Option<String>, Query, description = "Exact service"),
        ("team" = Option<String>, Query, description = "Exact team"),
        ("assignee" = Option<String>, Query, description = "Exact assignee"),
        ("tenant" = Option<String>, Query, description = "Exact tenant"),
        ("label" = Option<Vec<String>>, Query, description = "`key=value` the incident's labels must hold; repeatable, all must match"),
        ("q" = Option<String>, Query, description = "Text the title contains, ignoring case"),
        ("created_after" = Option<String>, Query, description = "RFC 3339 time, exclusive (write `+` offsets as `%2B`, or use `Z`)"),
        ("created_before" = Option<String>, Query, description = "RFC 3339 time, exclusive"),
        ("resolved_after" = Option<String>, Query, description = "RFC 3339 time, exclusive; only resolved incidents match"),
        ("resolved_before" = Option<String>, Query, description = "RFC 3339 time, exclusive; only resolved incidents match"),
        ("sort" = Option<String>, Query, description = "created (default), updated or severity; ties go by id"),
        ("order" = Option<String>, Query, description = "desc (default) or asc"),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 1000 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next` of the previous page, with the same sort and order"),
    ),
    responses(
        (status = 200, description = "One page", body = IncidentPage),
        (status = 400, description = "Unreadable query or foreign cursor", body = ErrorBody),
        (status = 422, description = "A parameter is unknown or has an invalid value; the message names it", body = ErrorBody),
    ))]
pub async fn list_incidents(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<IncidentPage>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = ListQuery::parse(&pairs)?;
    let summaries = state.incident_summaries().await?;
    Ok(Json(query.page(summaries)))
}

/// Response header saying where an incident was read: `owner` (this
/// replica owns its shard and answered from memory) or `store` (another
/// replica owns it; this is its last stored snapshot, which lags the owner
/// by about one group commit, as lists do).
const SOURCE_HEADER: &str = "incidentd-source";

/// Incident `id` in full and where it was read (see `SOURCE_HEADER`).
async fn read_incident(
    state: &AppState,
    id: IncidentId,
) -> Result<(Incident, &'static str), ApiError> {
    match state.engine.incident(id).await {
        Ok(incident) => return Ok((incident, "owner")),
        Err(CommandError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let Directory::Redis(store) = &state.directory else {
        return Err(CommandError::NotFound(id).into());
    };
    let bytes = store
        .stored_incident(id, state.engine.shard_count())
        .await?
        .ok_or(CommandError::NotFound(id))?;
    let incident = decode_incident(&id.to_string(), &bytes).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt_snapshot",
            e.to_string(),
        )
    })?;
    Ok((incident, "store"))
}

/// One incident with its alerts, escalation state and recent timeline.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    responses(
        (status = 200, description = "The incident; any replica answers", body = Incident,
            headers(("incidentd-source" = String, description = "`owner` (read from the owning replica's memory) or `store` (another replica owns it: its last stored snapshot, lagging by about one group commit)"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No live incident with that id", body = ErrorBody),
        (status = 503, description = "This replica does not own the incident and the store cannot be reached", body = ErrorBody),
    ))]
pub async fn get_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = request::incident_id(&id)?;
    let (incident, source) = read_incident(&state, id).await?;
    Ok(([(SOURCE_HEADER, source)], Json(incident)))
}

/// The most recent timeline entries (the engine keeps a bounded number)
/// and how many were ever written.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Timeline {
    #[schema(value_type = Vec<TimelineEntry>)]
    pub entries: VecDeque<TimelineEntry>,
    pub total: u64,
}

/// The incident's timeline: who did what, oldest first.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/timeline", tag = "incidents",
    params(("id" = String, Path, description = "Incident id (ULID)")),
    responses(
        (status = 200, description = "The timeline; any replica answers", body = Timeline,
            headers(("incidentd-source" = String, description = "`owner` or `store`, as for the incident"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No live incident with that id", body = ErrorBody),
        (status = 503, description = "This replica does not own the incident and the store cannot be reached", body = ErrorBody),
    ))]
pub async fn get_timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = request::incident_id(&id)?;
    let (incident, source) = read_incident(&state, id).await?;
    let timeline = Timeline {
        entries: incident.timeline,
        total: incident.timeline_total,
    };
    Ok(([(SOURCE_HEADER, source)], Json(timeline)))
}

/// An incident opened by hand, without an alert behind it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: Labels,
    /// Defaults to `ingest.default_tenant`.
    pub tenant: Option<String>,
    /// Who opened it; defaults to the caller's token.
    pub actor: Option<String>,
}

/// Opens an incident; answers once it is stored.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    request_body = CreateIncident,
    responses(
        (status = 201, description = "Opened and stored; `Location` names it", body = IncidentSummary),
        (status = 202, description = "Cluster mode: queued for the replica that owns the incident", body = QueuedBody),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; the message names it", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn create_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: CreateIncident = request::json(body)?;
    let actor = actor_of(body.actor.as_deref(), &headers)?;
    let tenant = match body.tenant {
        Some(t) if t.trim().is_empty() => {
            return Err(ApiError::unprocessable(
                "tenant must not be blank; leave it out for the default tenant",
            ))
        }
        Some(t) => t,
        None => state.config.ingest.default_tenant.clone(),
    };
    let request = NewIncident {
        tenant,
        title: body.title,
        severity: body.severity,
        service: body.service,
        team: body.team,
        assignee: body.assignee,
        labels: body.labels,
    };
    match state.intake.create(request, &actor).await? {
        Applied::Done(summary) => {
            let location = format!("/api/v1/incidents/{}", summary.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(summary),
            )
                .into_response())
        }
        queued => Ok(queued.into_response()),
    }
}
