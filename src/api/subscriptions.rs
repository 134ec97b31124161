//! Webhook subscriptions: create, list, read, delete, and what failed to
//! deliver. The secret is taken on creation and never shown again.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ulid::Ulid;

use super::error::{ApiError, ErrorBody};
use super::request;
use crate::state::AppState;
use crate::subscriptions::{Deliveries, NewSubscription, SubscriptionError, SubscriptionView};

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        let message = e.to_string();
        match e {
            SubscriptionError::Invalid(_) => ApiError::unprocessable(message),
            SubscriptionError::TooMany { .. } => ApiError::conflict(message),
            SubscriptionError::Store(e) => e.into(),
        }
    }
}

fn subscription_id(text: &str) -> Result<Ulid, ApiError> {
    text.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "subscription id {text:?}: {e}; ids are 26-character ULIDs"
        ))
    })
}

fn not_found(id: Ulid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no subscription {id}"),
    )
}

/// Registers a webhook: matching incident events are POSTed to `url` as
/// CloudEvents (`application/cloudevents+json`), with `ce-id` and
/// `Idempotency-Key` set to the event id and, with a secret,
/// `X-Incidentd-Signature: sha256=<hex HMAC-SHA256 of the body>`.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions",
    request_body = NewSubscription,
    responses(
        (status = 201, description = "Stored and delivering; `Location` names it", body = SubscriptionView),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 409, description = "subscriptions.max_subscriptions reached", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or invalid; the message names it", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new: NewSubscription = request::json(body)?;
    let subscription = state.subscriptions.create(new).await?;
    let location = format!("/api/v1/subscriptions/{}", subscription.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(SubscriptionView::from(&subscription)),
    )
        .into_response())
}

/// Every subscription, oldest first.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions",
    responses(
        (status = 200, description = "All subscriptions", body = Vec<SubscriptionView>),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    let all = state.subscriptions.list().await?;
    Ok(Json(all.iter().map(SubscriptionView::from).collect()))
}

/// One subscription.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (ULID)")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let id = subscription_id(&id)?;
    match state.subscriptions.get(id).await? {
        Some(subscription) => Ok(Json(SubscriptionView::from(&subscription))),
        None => Err(not_found(id)),
    }
}

/// Deletes the subscription and its dead letters. This replica stops
/// delivering at once, the others within `subscriptions.refresh_interval`.
#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (ULID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = subscription_id(&id)?;
    if state.subscriptions.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// The events the subscription gave up on (its dead letters) and this
/// replica's delivery counts.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/deliveries", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (ULID)")),
    responses(
        (status = 200, description = "Dead letters and counts", body = Deliveries),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry", body = ErrorBody),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Deliveries>, ApiError> {
    let id = subscription_id(&id)?;
    match state.subscriptions.deliveries(id).await? {
        Some(deliveries) => Ok(Json(deliveries)),
        None => Err(not_found(id)),
    }
}
