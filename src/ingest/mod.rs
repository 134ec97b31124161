//! Alert ingest: wire-format decoders and their HTTP endpoints.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
