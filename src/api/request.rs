//! Reading what a request says: the incident id in its path and its JSON
//! body, with errors in the API's shape (400 for what cannot be read, 422
//! for what was read but is wrong, naming the field).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use incidentd_actors::model::IncidentId;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::ApiError;

pub fn incident_id(text: &str) -> Result<IncidentId, ApiError> {
    text.parse().map_err(|e: String| {
        ApiError::bad_request(format!(
            "{e}; incident ids are 26-character ULIDs such as 01JDQ2X3Y4Z5A6B7C8D9E0F1G2"
        ))
    })
}

/// A required JSON body.
pub fn json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = bytes(body)?;
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        Category::Data => ApiError::unprocessable(format!("request body: {e}")),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("request body is not valid JSON: {e}"))
        }
    })
}

/// A JSON body that may be left out entirely.
pub fn optional_json<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        other => json(other),
    }
}

/// The raw body: 413 when over the route's limit, 400 when unreadable.
pub fn bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                "request body is over the configured limit",
            )
        } else {
            ApiError::new(status, "bad_request", rejection.body_text())
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        text: String,
    }

    fn read(body: &str) -> Result<Body, ApiError> {
        json(Ok(Bytes::from(body.to_string())))
    }

    #[test]
    fn malformed_is_400_and_wrong_shape_is_422_naming_the_field() {
        assert_eq!(read(r#"{"text":"x"}"#).unwrap().text, "x");
        assert_eq!(read("{").unwrap_err().status, StatusCode::BAD_REQUEST);
        let missing = read("{}").unwrap_err();
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(missing.message.contains("`text`"), "{}", missing.message);
        let unknown = read(r#"{"text":"x","txt":"y"}"#).unwrap_err();
        assert!(unknown.message.contains("`txt`"), "{}", unknown.message);
    }

    #[test]
    fn optional_body_may_be_empty() {
        let empty: Body = optional_json(Ok(Bytes::new())).unwrap();
        assert_eq!(empty, Body::default());
        assert!(optional_json::<Body>(Ok(Bytes::from_static(b"{}"))).is_err());
    }

    #[test]
    fn malformed_id_is_400() {
        let e = incident_id("nope").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("nope"));
    }
}
