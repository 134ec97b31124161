//! The REST API, live event stream and OpenAPI document.

pub mod error;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
