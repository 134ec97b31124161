//! A webhook subscription: where events go, which ones, and the secret
//! their bodies are signed with.

use incidentd_actors::model::Timestamp;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::bus::EventFilter;

/// Longest URL, secret and description accepted (bounded everything).
const MAX_URL_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 1024;
const MAX_DESCRIPTION_LEN: usize = 1024;

/// A subscription as stored. The secret is kept because every delivery is
/// signed with it; it never leaves through the API (`SubscriptionView`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: Ulid,
    pub url: String,
    pub secret: Option<String>,
    pub filter: EventFilter,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

/// The body of `POST /api/v1/subscriptions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Where events are POSTed: an http:// or https:// URL with a host.
    pub url: String,
    /// When set, each body is signed: `X-Incidentd-Signature: sha256=<hex
    /// of HMAC-SHA256(secret, body)>`.
    pub secret: Option<String>,
    /// Which events to deliver; all when left out.
    #[serde(default)]
    pub filter: EventFilter,
    /// Free text for the humans reading the list.
    pub description: Option<String>,
}

impl NewSubscription {
    /// Checks the fields and makes the subscription, or says which field is
    /// wrong and why.
    pub fn into_subscription(self, created_at: Timestamp) -> Result<Subscription, String> {
        check_url(&self.url)?;
        match &self.secret {
            Some(s) if s.is_empty() => {
                return Err("secret must not be empty; leave it out for unsigned deliveries".into())
            }
            Some(s) if s.len() > MAX_SECRET_LEN => {
                return Err(format!("secret is longer than {MAX_SECRET_LEN} bytes"))
            }
            _ => {}
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN)
        {
            return Err(format!(
                "description is longer than {MAX_DESCRIPTION_LEN} bytes"
            ));
        }
        Ok(Subscription {
            id: Ulid::new(),
            url: self.url,
            secret: self.secret,
            filter: self.filter,
            description: self.description,
            created_at,
        })
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("url is longer than {MAX_URL_LEN} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url {url:?} must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {url:?} has no host"));
    }
    Ok(())
}

/// A subscription as the API shows it: everything but the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    #[schema(value_type = String, example = "01JDQ2X3Y4Z5A6B7C8D9E0F1G2")]
    pub id: Ulid,
    pub url: String,
    /// Whether deliveries are signed.
    pub has_secret: bool,
    pub filter: EventFilter,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        SubscriptionView {
            id: s.id,
            url: s.url.clone(),
            has_secret: s.secret.is_some(),
            filter: s.filter.clone(),
            description: s.description.clone(),
            created_at: s.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(url: &str, secret: Option<&str>) -> NewSubscription {
        NewSubscription {
            url: url.into(),
            secret: secret.map(Into::into),
            filter: EventFilter::default(),
            description: None,
        }
    }

    #[test]
    fn url_must_be_http_with_a_host() {
        assert!(new("https://hooks.example/x?y=1", None)
            .into_subscription(Timestamp(0))
            .is_ok());
        for (url, expected) in [
            (
                "ftp://hooks.example/",
                "must start with http:// or https://",
            ),
            ("http://", "is not a URL"),
            ("hooks.example/x", "is not a URL"),
        ] {
            let error = new(url, None).into_subscription(Timestamp(0)).unwrap_err();
            assert!(
                error.contains("url") && error.contains(expected),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn an_empty_secret_is_refused_and_the_view_hides_it() {
        let error = new("http://h/", Some(""))
            .into_subscription(Timestamp(0))
            .unwrap_err();
        assert!(error.starts_with("secret"), "{error}");
        let subscription = new("http://h/", Some("s"))
            .into_subscription(Timestamp(0))
            .unwrap();
        let view = serde_json::to_value(SubscriptionView::from(&subscription)).unwrap();
        assert_eq!(view["has_secret"], true);
        assert!(view.get("secret").is_none());
    }

    #[test]
    fn unknown_fields_and_event_types_are_refused() {
        let unknown =
            serde_json::from_str::<NewSubscription>(r#"{"url":"http://h/","urll":1}"#).unwrap_err();
        assert!(unknown.to_string().contains("urll"), "{unknown}");
        let kind = serde_json::from_str::<NewSubscription>(
            r#"{"url":"http://h/","filter":{"types":["exploded"]}}"#,
        )
        .unwrap_err();
        assert!(kind.to_string().contains("exploded"), "{kind}");
    }
}
