use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::Notification;
use crate::config::WebhookChannelConfig;
use crate::telemetry;

pub const SIGNATURE_HEADER: &str = "X-Incidentd-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, as receivers verify it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers the channel's notifications one at a time, in order, until the
/// queue closes.
pub(super) async fn deliver_all(
    channel: WebhookChannelConfig,
    mut queue: mpsc::Receiver<Notification>,
) {
    let client = match reqwest::Client::builder().timeout(channel.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(channel = %channel.name, error = %e, "cannot build HTTP client; webhook channel disabled");
            return;
        }
    };
    while let Some(notification) = queue.recv().await {
        let outcome = match deliver(&client, &channel, &notification).await {
            Ok(()) => "delivered",
            Err(e) => {
                tracing::error!(channel = %channel.name, key = %notification.idempotency_key, error = %e, "webhook notification failed after all retries");
                "failed"
            }
        };
        metrics::counter!(telemetry::NOTIFICATIONS, "channel" => channel.name.clone(), "outcome" => outcome).increment(1);
    }
}

async fn deliver(
    client: &reqwest::Client,
    channel: &WebhookChannelConfig,
    notification: &Notification,
) -> Result<(), String> {
    let body = serde_json::to_vec(notification).map_err(|e| e.to_string())?;
    let mut backoff = channel.initial_backoff;
    let mut last_error = String::new();
    for attempt in 0..=channel.max_retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
        let mut request = client
            .post(&channel.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, &notification.idempotency_key)
            .body(body.clone());
        if let Some(secret) = &channel.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            // A 4xx other than 408/429 will not get better by retrying.
            Ok(response)
                if response.status().is_client_error()
                    && ![408, 429].contains(&response.status().as_u16()) =>
            {
                return Err(format!("receiver refused it with {}", response.status()));
            }
            Ok(response) => last_error = format!("receiver answered {}", response.status()),
            Err(e) => last_error = e.to_string(),
        }
        tracing::warn!(channel = %channel.name, attempt = attempt + 1, error = %last_error, "webhook delivery failed; will retry");
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
