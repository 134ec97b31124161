//! The REST API, live event stream and OpenAPI document.
//!
//! Reading incidents is served from the engine's read model; every change
//! goes through `Engine::command` and is answered once stored.

mod actor;
mod commands;
pub mod error;
mod incidents;
mod list_query;
mod openapi;
pub mod request;
mod schemas;
mod stream;
mod stream_filter;
mod subscriptions;
#[cfg(test)]
mod tests;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/incidents",
            get(incidents::list_incidents).post(incidents::create_incident),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(incidents::get_incident).patch(commands::update),
        )
        .route(
            "/api/v1/incidents/{id}/timeline",
            get(incidents::get_timeline),
        )
        .route("/api/v1/incidents/{id}/{action}", post(commands::lifecycle))
        .route("/api/v1/incidents/{id}/snooze", post(commands::snooze))
        .route("/api/v1/incidents/{id}/assign", post(commands::assign))
        .route("/api/v1/incidents/{id}/notes", post(commands::add_note))
        .route("/api/v1/events", get(stream::events))
        .route("/api/v1/schemas", get(schemas::list_schemas))
        .route("/api/v1/schemas/{name}", get(schemas::get_schema))
        .route(
            "/api/v1/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/api/v1/subscriptions/{id}",
            get(subscriptions::get).delete(subscriptions::delete),
        )
        .route(
            "/api/v1/subscriptions/{id}/deliveries",
            get(subscriptions::deliveries),
        )
        .merge(openapi::router())
}
