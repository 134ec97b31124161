//! Who made a change through the API, for the timeline and the event.

use axum::http::{header, HeaderMap};

use super::error::ApiError;

/// Longest `actor` a request may name.
pub const MAX_ACTOR_LEN: usize = 128;

/// The body's `actor`; else `token:<first 6 characters>` of the bearer
/// token, so changes are traceable to a token without recording it whole;
/// else `anonymous` (only possible when no tokens are configured).
pub fn actor_of(given: Option<&str>, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(actor) = given {
        let actor = actor.trim();
        if actor.is_empty() {
            return Err(ApiError::unprocessable(
                "actor must not be blank; leave it out to be recorded by your token",
            ));
        }
        if actor.chars().count() > MAX_ACTOR_LEN {
            return Err(ApiError::unprocessable(format!(
                "actor is longer than {MAX_ACTOR_LEN} characters"
            )));
        }
        return Ok(actor.to_string());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    Ok(match token {
        Some(token) => format!("token:{}", token.chars().take(6).collect::<String>()),
        None => "anonymous".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn body_actor_then_token_prefix_then_anonymous() {
        assert_eq!(
            actor_of(Some(" alice "), &bearer("s3cr3t-token")).unwrap(),
            "alice"
        );
        assert_eq!(
            actor_of(None, &bearer("s3cr3t-token")).unwrap(),
            "token:s3cr3t"
        );
        assert_eq!(actor_of(None, &bearer("abc")).unwrap(), "token:abc");
        assert_eq!(actor_of(None, &HeaderMap::new()).unwrap(), "anonymous");
    }

    #[test]
    fn blank_or_long_actor_is_refused() {
        let blank = actor_of(Some("  "), &HeaderMap::new()).unwrap_err();
        assert_eq!(blank.status.as_u16(), 422);
        assert!(blank.message.contains("actor"));
        let long = "x".repeat(MAX_ACTOR_LEN + 1);
        assert_eq!(
            actor_of(Some(&long), &HeaderMap::new())
                .unwrap_err()
                .status
                .as_u16(),
            422
        );
    }
}
