//! Escalation notifications: every `escalated` event goes to the channels
//! its step names. `log` writes a log line; webhook channels POST a signed
//! JSON body with retries. Vendor channels plug in the same way.

mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use incidentd_actors::model::{Change, IncidentEvent};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::bus::{EventListener, SharedEvent};
use crate::config::NotifierConfig;
use crate::telemetry;

/// What a webhook receives for one escalation step.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    /// Incident id + escalation run + step + loop: the same for a redelivery.
    pub idempotency_key: String,
    pub event_id: String,
    pub time: incidentd_actors::model::Timestamp,
    pub policy: String,
    pub step: u32,
    pub loop_index: u32,
    pub targets: Vec<String>,
    pub incident: Arc<incidentd_actors::model::IncidentSummary>,
}

impl Notification {
    fn from_event(event: &IncidentEvent) -> Option<(Notification, Vec<String>)> {
        let Change::Escalated {
            policy,
            step,
            loop_index,
            targets,
            channels,
            idempotency_key,
        } = &event.change
        else {
            return None;
        };
        let notification = Notification {
            idempotency_key: idempotency_key.clone(),
            event_id: event.id.clone(),
            time: event.time,
            policy: policy.clone(),
            step: *step,
            loop_index: *loop_index,
            targets: targets.clone(),
            incident: event.incident.clone(),
        };
        Some((notification, channels.clone()))
    }
}

pub struct Notifier {
    log: bool,
    /// Emptied by `stop`, which closes the queues so workers finish.
    queues: std::sync::Mutex<HashMap<String, mpsc::Sender<Notification>>>,
    workers: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    /// Starts one delivery worker per webhook channel.
    pub fn start(config: &NotifierConfig) -> Arc<Notifier> {
        let mut queues = HashMap::new();
        let mut workers = Vec::new();
        for channel in &config.webhooks {
            let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
            queues.insert(channel.name.clone(), tx);
            workers.push(tokio::spawn(webhook::deliver_all(channel.clone(), rx)));
        }
        Arc::new(Notifier {
            log: config.log,
            queues: std::sync::Mutex::new(queues),
            workers: tokio::sync::Mutex::new(workers),
        })
    }

    /// Stops taking notifications and lets queued ones go out, within `timeout`.
    pub async fn stop(&self, timeout: Duration) {
        // Dropping the senders closes the queues: each worker delivers what
        // is queued, then ends.
        self.queues.lock().expect("queues lock").clear();
        let workers = std::mem::take(&mut *self.workers.lock().await);
        let drain = async {
            for worker in workers {
                let _ = worker.await;
            }
        };
        let _ = tokio::time::timeout(timeout, drain).await;
    }
}

impl EventListener for Notifier {
    fn on_event(&self, event: &Arc<SharedEvent>) {
        let Some((notification, channels)) = Notification::from_event(event) else {
            return;
        };
        for channel in channels {
            if channel == "log" && self.log {
                tracing::warn!(
                    incident = %notification.incident.id,
                    title = %notification.incident.title,
                    policy = %notification.policy,
                    step = notification.step + 1,
                    targets = ?notification.targets,
                    key = %notification.idempotency_key,
                    "escalation"
                );
                metrics::counter!(telemetry::NOTIFICATIONS, "channel" => "log", "outcome" => "delivered").increment(1);
                continue;
            }
            let queues = self.queues.lock().expect("queues lock");
            let Some(queue) = queues.get(&channel) else {
                tracing::warn!(channel = %channel, "escalation names a channel that is not configured; skipped");
                metrics::counter!(telemetry::NOTIFICATIONS, "channel" => channel, "outcome" => "unknown_channel").increment(1);
                continue;
            };
            if queue.try_send(notification.clone()).is_err() {
                tracing::error!(channel = %channel, key = %notification.idempotency_key, "notification queue full; notification dropped");
                metrics::counter!(telemetry::NOTIFICATIONS, "channel" => channel, "outcome" => "dropped").increment(1);
            }
        }
    }
}
