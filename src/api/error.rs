use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use incidentd_actors::model::CommandError;
use incidentd_actors::ports::StoreError;
use incidentd_actors::EngineError;
use serde::Serialize;

/// Every error the API answers: `{"error": code, "message": ...}` with the
/// status that says whose fault it is.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found`, `conflict`, `invalid`.
    pub error: String,
    /// What was wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503 with `Retry-After`: worth sending again shortly.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let message = e.to_string();
        match e {
            CommandError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            CommandError::NotApplicable { .. } => ApiError::conflict(message),
            CommandError::Invalid { .. } => ApiError::unprocessable(message),
            CommandError::Unavailable(_) => ApiError::unavailable(message),
        }
    }
}

/// The store behind lists, subscriptions and other replicas' incidents
/// cannot be reached.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

/// Engine errors are all transient from the caller's side: 503 with
/// `Retry-After`, so Alertmanager and PagerDuty clients retry.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = match e {
            EngineError::Busy { .. } => "busy",
            _ => "unavailable",
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
    }
}
