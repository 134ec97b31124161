//! The ingest endpoints. A 2xx means durable: each handler answers after
//! `Engine::submit` returned, i.e. after the snapshots holding the alerts'
//! effect were stored. Engine trouble is 503 with `Retry-After` (never 4xx:
//! Alertmanager does not retry 4xx).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use incidentd_actors::model::{Alert, FieldError, Timestamp};
use serde::Serialize;
use serde_json::json;

use super::pagerduty_keys::{KeyLookupError, PagerDutyAction, UnknownDedupKey};
use super::{
    decode_alertmanager_v2, decode_alertmanager_webhook, decode_native_json, decode_native_ndjson,
    decode_pagerduty, BodyError, Decoded, PagerDutyError,
};
use crate::api::error::ApiError;
use crate::api::request::bytes;
use crate::state::AppState;
use crate::telemetry;

pub fn router(body_limit: usize, pagerduty_body_limit: usize) -> Router<AppState> {
    let pagerduty = Router::new()
        .route("/v2/enqueue", post(pagerduty_enqueue))
        .layer(DefaultBodyLimit::max(pagerduty_body_limit));
    Router::new()
        .route("/api/v2/alerts", post(alertmanager_v2))
        .route("/api/v1/webhooks/alertmanager", post(alertmanager_webhook))
        .route("/api/v1/alerts", post(native))
        .layer(DefaultBodyLimit::max(body_limit))
        .merge(pagerduty)
}

/// A batch with some invalid alerts: the valid ones were taken.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectedBatch {
    pub error: String,
    pub message: String,
    pub accepted: usize,
    pub rejected: Vec<RejectedAlert>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectedAlert {
    /// Position in the batch (array index; line number for NDJSON).
    pub index: usize,
    pub errors: Vec<FieldErrorBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

impl From<&FieldError> for FieldErrorBody {
    fn from(e: &FieldError) -> Self {
        FieldErrorBody {
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

fn require_content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if allowed.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {given:?} is not accepted here; send {}",
                allowed.join(" or ")
            ),
        ))
    }
}

fn malformed(format: &'static str, e: BodyError) -> ApiError {
    metrics::counter!(telemetry::ALERTS_REJECTED, "format" => format, "reason" => "malformed")
        .increment(1);
    ApiError::bad_request(e.to_string())
}

/// Submits the valid alerts, then answers: `ok` when all were valid, 400
/// naming each invalid one otherwise.
async fn take(
    state: &AppState,
    format: &'static str,
    decoded: Decoded,
    mut alerts_fix: impl FnMut(&mut Alert),
) -> Result<Response, ApiError> {
    let Decoded {
        mut accepted,
        rejected,
    } = decoded;
    for alert in &mut accepted {
        alerts_fix(alert);
    }
    let count = accepted.len();
    metrics::counter!(telemetry::ALERTS_RECEIVED, "format" => format).increment(count as u64);
    if !rejected.is_empty() {
        metrics::counter!(telemetry::ALERTS_REJECTED, "format" => format, "reason" => "invalid")
            .increment(rejected.len() as u64);
    }
    if count > 0 {
        let started = Instant::now();
        state.intake.submit(accepted).await?;
        metrics::histogram!(telemetry::INGEST_DURABLE, "format" => format)
            .record(started.elapsed().as_secs_f64());
    }
    if rejected.is_empty() {
        return Ok(Json(json!({ "status": "success", "accepted": count })).into_response());
    }
    let body = RejectedBatch {
        error: "invalid_alerts".into(),
        message: format!(
            "{} of {} alerts are invalid and were not taken; the {count} valid ones were",
            rejected.len(),
            rejected.len() + count
        ),
        accepted: count,
        rejected: rejected
            .iter()
            .map(|r| RejectedAlert {
                index: r.index,
                errors: r.errors.iter().map(FieldErrorBody::from).collect(),
            })
            .collect(),
    };
    Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

fn default_tenant(state: &AppState) -> impl FnMut(&mut Alert) + '_ {
    move |alert| alert.tenant = state.config.ingest.default_tenant.as_str().into()
}

/// Alertmanager API v2: Prometheus can use incidentd as its Alertmanager.
#[utoipa::path(post, path = "/api/v2/alerts", tag = "ingest",
    request_body(content = String, description = "JSON array of Alertmanager v2 alerts", content_type = "application/json"),
    responses(
        (status = 200, description = "All alerts taken and stored"),
        (status = 400, description = "Malformed body, or some alerts invalid (the valid ones were taken)", body = RejectedBatch),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not application/json"),
        (status = 503, description = "Engine full or store unavailable; retry"),
    ))]
pub async fn alertmanager_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = bytes(raw)?;
    require_content_type(&headers, &["application/json"])?;
    let decoded = decode_alertmanager_v2(&raw, now(), state.config.ingest.resolve_timeout)
        .map_err(|e| malformed("alertmanager_v2", e))?;
    take(&state, "alertmanager_v2", decoded, default_tenant(&state)).await
}

/// Alertmanager webhook receiver (payload version 4).
#[utoipa::path(post, path = "/api/v1/webhooks/alertmanager", tag = "ingest",
    request_body(content = String, description = "Alertmanager webhook payload, version 4", content_type = "application/json"),
    responses(
        (status = 200, description = "All alerts taken and stored"),
        (status = 400, description = "Malformed payload, or some alerts invalid (the valid ones were taken)", body = RejectedBatch),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not application/json"),
        (status = 503, description = "Transient failure; Alertmanager retries"),
    ))]
pub async fn alertmanager_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = bytes(raw)?;
    require_content_type(&headers, &["application/json"])?;
    let decoded =
        decode_alertmanager_webhook(&raw).map_err(|e| malformed("alertmanager_webhook", e))?;
    take(
        &state,
        "alertmanager_webhook",
        decoded,
        default_tenant(&state),
    )
    .await
}

/// Native alerts: one JSON object, a JSON array, or NDJSON.
#[utoipa::path(post, path = "/api/v1/alerts", tag = "ingest",
    request_body(content = String, description = "Alert JSON object or array (application/json), or one alert per line (application/x-ndjson)", content_type = "application/json"),
    responses(
        (status = 200, description = "All alerts taken and stored"),
        (status = 400, description = "Malformed body, or some alerts invalid (the valid ones were taken)", body = RejectedBatch),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Neither application/json nor application/x-ndjson"),
        (status = 503, description = "Engine full or store unavailable; retry"),
    ))]
pub async fn native(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = bytes(raw)?;
    require_content_type(&headers, &["application/json", "application/x-ndjson"])?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-ndjson"));
    let decoded = if ndjson {
        decode_native_ndjson(&raw)
    } else {
        decode_native_json(&raw)
    }
    .map_err(|e| malformed("native", e))?;
    take(&state, "native", decoded, |_| {}).await
}

/// PagerDuty's error body: `{"status":"invalid event","message":…,"errors":[…]}`.
fn pagerduty_invalid(message: impl Into<String>, errors: Vec<String>) -> Response {
    metrics::counter!(telemetry::ALERTS_REJECTED, "format" => "pagerduty", "reason" => "invalid")
        .increment(1);
    let body = json!({ "status": "invalid event", "message": message.into(), "errors": errors });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn pagerduty_accepted(dedup_key: &str) -> Response {
    let body = json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// PagerDuty Events API v2: trigger, acknowledge, resolve.
#[utoipa::path(post, path = "/v2/enqueue", tag = "ingest",
    request_body(content = String, description = "PagerDuty Events API v2 event", content_type = "application/json"),
    responses(
        (status = 202, description = "Event processed and stored"),
        (status = 400, description = "Invalid event, or acknowledge/resolve for a dedup key no trigger carried within `ingest.pagerduty_key_ttl`"),
        (status = 413, description = "Body over 512 KB"),
        (status = 503, description = "Engine full or store unavailable; retry"),
    ))]
pub async fn pagerduty_enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = bytes(raw)?;
    require_content_type(&headers, &["application/json"])?;
    let event = match decode_pagerduty(&raw, now()) {
        Ok(event) => event,
        Err(PagerDutyError { message, errors }) => return Ok(pagerduty_invalid(message, errors)),
    };
    metrics::counter!(telemetry::ALERTS_RECEIVED, "format" => "pagerduty").increment(1);
    let (dedup_key, action) = match state
        .pagerduty
        .action(event, &state.config.ingest.default_tenant)
        .await
    {
        Ok(found) => found,
        Err(KeyLookupError::Unknown(unknown)) => return Ok(unknown_dedup_key(&unknown)),
        Err(KeyLookupError::Unavailable(e)) => return Err(e.into()),
    };
    match action {
        PagerDutyAction::Alert(alert) => state.intake.submit(vec![alert]).await?,
        PagerDutyAction::Acknowledge { probe, actor } => {
            if !state.intake.acknowledge_group(probe, &actor).await? {
                return Ok(unknown_dedup_key(&UnknownDedupKey(dedup_key)));
            }
        }
    }
    Ok(pagerduty_accepted(&dedup_key))
}

fn unknown_dedup_key(unknown: &UnknownDedupKey) -> Response {
    pagerduty_invalid("Event object is invalid", vec![unknown.to_string()])
}
