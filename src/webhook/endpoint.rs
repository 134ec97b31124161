use std::time::Duration;

use async_trait::async_trait;

use super::signature::{signature, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};

/// One body to POST, with what identifies it to the receiver.
pub struct Request<'a> {
    pub body: &'a [u8],
    pub content_type: &'static str,
    /// The same on every attempt and redelivery, so receivers drop repeats.
    pub idempotency_key: &'a str,
    /// More headers, e.g. CloudEvents' `ce-id`.
    pub headers: &'a [(&'static str, &'a str)],
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub error: String,
    /// The receiver's HTTP status, when it answered at all.
    pub status: Option<u16>,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again: no answer, a timeout, 5xx, 408 or 429.
    Failed(Failure),
    /// Any other 4xx: the receiver will not take it however often it is sent.
    Refused(Failure),
}

/// Something that takes one delivery attempt. `Endpoint` is the real one;
/// tests script their own.
#[async_trait]
pub trait Post: Send + Sync {
    async fn post(&self, request: &Request<'_>) -> Attempt;
}

/// A receiver's URL, with the secret its bodies are signed with.
pub struct Endpoint {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
    timeout: Duration,
}

impl Endpoint {
    /// `client` may be shared (it pools connections); `timeout` bounds each
    /// attempt, from sending to the end of the answer.
    pub fn new(
        client: reqwest::Client,
        url: String,
        secret: Option<String>,
        timeout: Duration,
    ) -> Endpoint {
        Endpoint {
            client,
            url,
            secret,
            timeout,
        }
    }
}

#[async_trait]
impl Post for Endpoint {
    async fn post(&self, request: &Request<'_>) -> Attempt {
        let mut builder = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, request.content_type)
            .header(IDEMPOTENCY_HEADER, request.idempotency_key)
            .body(request.body.to_vec());
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        if let Some(secret) = &self.secret {
            builder = builder.header(SIGNATURE_HEADER, signature(secret, request.body));
        }
        match builder.send().await {
            Ok(response) => classify(response.status().as_u16()),
            Err(e) => Attempt::Failed(Failure {
                error: e.to_string(),
                status: None,
            }),
        }
    }
}

/// 2xx is delivered; a 4xx other than 408/429 will not get better by
/// retrying; everything else may.
fn classify(status: u16) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Delivered;
    }
    if (400..500).contains(&status) && ![408, 429].contains(&status) {
        return Attempt::Refused(Failure {
            error: format!("receiver refused it with {status}"),
            status: Some(status),
        });
    }
    Attempt::Failed(Failure {
        error: format!("receiver answered {status}"),
        status: Some(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_other_than_408_and_429_are_final() {
        assert_eq!(classify(204), Attempt::Delivered);
        assert!(matches!(classify(400), Attempt::Refused(_)));
        assert!(matches!(classify(404), Attempt::Refused(_)));
        for retried in [408, 429, 500, 503, 302] {
            assert!(matches!(classify(retried), Attempt::Failed(_)), "{retried}");
        }
    }
}
