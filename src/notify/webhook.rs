use std::time::Duration;

use tokio::sync::mpsc;

use super::Notification;
use crate::config::WebhookChannelConfig;
use crate::telemetry;
use crate::webhook::{deliver, Endpoint, Request, Retry};

/// Longest pause between two attempts of one notification.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Delivers the channel's notifications one at a time, in order, until the
/// queue closes.
pub(super) async fn deliver_all(
    channel: WebhookChannelConfig,
    mut queue: mpsc::Receiver<Notification>,
) {
    let client = match reqwest::Client::builder().build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(channel = %channel.name, error = %e, "cannot build HTTP client; webhook channel disabled");
            return;
        }
    };
    let endpoint = Endpoint::new(
        client,
        channel.url.clone(),
        channel.secret.clone(),
        channel.timeout,
    );
    let retry = Retry {
        max_attempts: channel.max_retries.saturating_add(1),
        initial_backoff: channel.initial_backoff,
        max_backoff: MAX_BACKOFF,
    };
    while let Some(notification) = queue.recv().await {
        let body = serde_json::to_vec(&notification).expect("a notification always serializes");
        let request = Request {
            body: &body,
            content_type: "application/json",
            idempotency_key: &notification.idempotency_key,
            headers: &[],
        };
        let outcome = match deliver(&endpoint, &request, &retry, &channel.name)
            .await
            .result
        {
            Ok(()) => "delivered",
            Err(failure) => {
                tracing::error!(channel = %channel.name, key = %notification.idempotency_key, error = %failure.error, "webhook notification failed after all retries");
                "failed"
            }
        };
        metrics::counter!(telemetry::NOTIFICATIONS, "channel" => channel.name.clone(), "outcome" => outcome).increment(1);
    }
}
