//! One source topic: connect, take batches, dead-letter the poison, hand
//! the rest to intake, acknowledge once durable, negatively acknowledge
//! what could not be stored. A broken connection (or, on a failover
//! subscription, a batch that could not be stored) starts over on a new
//! connection after a backoff.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use incidentd_actors::model::Timestamp;
use incidentd_actors::ports::AlertRecord;
use pulsar::consumer::{DeadLetterPolicy, Message};
use pulsar::{Consumer, ConsumerOptions, Producer, Pulsar, SubType, TokioExecutor};
use tokio::sync::watch;

use super::config::{PulsarSource, PulsarSourceConfig, PulsarSubscriptionType};
use super::{batch, dead_letter, telemetry};
use crate::ingest::{decode_source, PagerDutyKeys};
use crate::intake::Intake;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What every topic source shares.
pub struct Shared {
    pub config: PulsarSourceConfig,
    pub intake: Intake,
    pub pagerduty: Arc<PagerDutyKeys>,
    pub default_tenant: String,
}

pub struct TopicSource {
    pub shared: Arc<Shared>,
    pub source: PulsarSource,
    /// Becomes true at shutdown.
    pub stop: watch::Receiver<bool>,
}

/// One connection's consumer and dead-letter producer.
struct Session {
    consumer: Consumer<Vec<u8>, TokioExecutor>,
    dead_letters: Producer<TokioExecutor>,
}

impl TopicSource {
    /// Consumes until stopped; the batch in flight at the stop is finished.
    pub async fn run(mut self) {
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            let ended = match self.connect().await {
                Ok(mut session) => {
                    tracing::info!(topic = %self.source.topic, "pulsar source: subscribed");
                    let ended = self.consume(&mut session, &mut delay).await;
                    self.close(session).await;
                    ended
                }
                Err(e) => Err(e),
            };
            let Err(e) = ended else {
                return;
            };
            if self.stopping() {
                return;
            }
            telemetry::reconnect(&self.source.topic);
            tracing::warn!(topic = %self.source.topic, error = %e, retry_in = ?delay, "pulsar source: starting over");
            sleep_unless_stopped(&mut self.stop, delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    async fn connect(&self) -> Result<Session, String> {
        let config = &self.shared.config;
        let topic = &self.source.topic;
        let connecting = async {
            let client = Pulsar::builder(config.url.clone(), TokioExecutor)
                .build()
                .await
                .map_err(|e| format!("connecting to {}: {e}", config.url))?;
            let consumer = client
                .consumer()
                .with_topic(topic)
                .with_subscription(&config.subscription)
                .with_subscription_type(match config.subscription_type {
                    PulsarSubscriptionType::KeyShared => SubType::KeyShared,
                    PulsarSubscriptionType::Failover => SubType::Failover,
                })
                // Flow permits and the receiver queue bound what the client
                // buffers ahead of us.
                .with_batch_size(config.max_batch)
                .with_options(ConsumerOptions::default().with_receiver_queue_size(config.max_batch))
                // The client moves a message that arrives with this many
                // redeliveries (counted by the broker) to the dead-letter
                // topic instead of handing it over.
                .with_dead_letter_policy(DeadLetterPolicy {
                    max_redeliver_count: config.max_redeliveries,
                    dead_letter_topic: config.dead_letter_topic.clone(),
                })
                .build()
                .await
                .map_err(|e| format!("subscribing {:?} to {topic}: {e}", config.subscription))?;
            let dead_letters = client
                .producer()
                .with_topic(&config.dead_letter_topic)
                .build()
                .await
                .map_err(|e| format!("producer for {}: {e}", config.dead_letter_topic))?;
            Ok(Session {
                consumer,
                dead_letters,
            })
        };
        tokio::time::timeout(config.operation_timeout, connecting)
            .await
            .map_err(|_| {
                format!(
                    "no subscription to {topic} on {} within {:?}",
                    config.url, config.operation_timeout
                )
            })?
    }

    /// Batches until stopped (Ok) or until something fails (Err).
    async fn consume(&mut self, session: &mut Session, delay: &mut Duration) -> Result<(), String> {
        while let Some(batch) = self.next_batch(&mut session.consumer).await? {
            if self.take(session, batch).await? {
                *delay = FIRST_RETRY_DELAY;
            } else if self.shared.config.subscription_type == PulsarSubscriptionType::Failover {
                // Messages behind the batch may already be queued here. On
                // a failover subscription the broker rewinds to the batch
                // for a new consumer, so starting over keeps strict order
                // (it counts no redeliveries there, so nothing is lost).
                // Key_Shared goes on instead: starting over would reset the
                // broker's redelivery counts that bound poison retries.
                return Err("starting over to be redelivered in order".into());
            }
        }
        Ok(())
    }

    /// Waits for one message, then takes what else is ready, up to
    /// `max_batch`. None once stopping.
    async fn next_batch(
        &mut self,
        consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
    ) -> Result<Option<Vec<Message<Vec<u8>>>>, String> {
        let first = tokio::select! {
            biased;
            _ = self.stop.wait_for(|stop| *stop) => return Ok(None),
            next = consumer.next() => next,
        };
        let mut batch = vec![received(first)?];
        while batch.len() < self.shared.config.max_batch as usize {
            match consumer.next().now_or_never() {
                Some(next) => batch.push(received(next)?),
                None => break,
            }
        }
        Ok(Some(batch))
    }

    /// Dead-letters the poison, applies the rest, then acknowledges every
    /// message (true); or, when the alerts cannot be stored, or a message
    /// cannot be decoded until the store answers, holds the messages not yet
    /// acknowledged for `redelivery_delay` and negatively acknowledges them
    /// (false). The hold is also the backoff while the store is out.
    async fn take(
        &mut self,
        session: &mut Session,
        batch: Vec<Message<Vec<u8>>>,
    ) -> Result<bool, String> {
        let topic = &self.source.topic;
        let mut inputs = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        let mut messages = batch.into_iter();
        while let Some(message) = messages.next() {
            let decoded = decode_source(
                self.source.format,
                &message.payload.data,
                &self.shared.default_tenant,
                &self.shared.pagerduty,
            )
            .await;
            let input = match decoded {
                Ok(input) => input,
                Err(e) => {
                    waiting.push(message);
                    waiting.extend(messages);
                    let why = format!("a message cannot be decoded yet: {e}");
                    return self.hold(session, &waiting, &why).await;
                }
            };
            if let Some(reason) = &input.problem {
                self.dead_letter(&mut session.dead_letters, &message, reason)
                    .await?;
                telemetry::messages(topic, "dead_lettered", 1);
                if input.alerts.is_empty() && input.acknowledges.is_empty() {
                    // Nothing in it to store: done once its dead letter is,
                    // whatever becomes of the rest of the batch.
                    ack(&mut session.consumer, &message).await?;
                    continue;
                }
            }
            inputs.push((input, message_record(&message)));
            waiting.push(message);
        }
        if waiting.is_empty() {
            return Ok(true);
        }
        match batch::apply(&self.shared.intake, batch::steps(inputs)).await {
            Ok(()) => {
                for message in &waiting {
                    ack(&mut session.consumer, message).await?;
                }
                telemetry::messages(topic, "taken", waiting.len());
                Ok(true)
            }
            Err(e) => {
                telemetry::submit_failed(topic);
                let why = format!("alerts could not be stored: {e}");
                self.hold(session, &waiting, &why).await
            }
        }
    }

    /// Holds `waiting` for `redelivery_delay`, then negatively acknowledges
    /// them: they are redelivered (to any replica) no sooner than that.
    async fn hold(
        &mut self,
        session: &mut Session,
        waiting: &[Message<Vec<u8>>],
        why: &str,
    ) -> Result<bool, String> {
        let topic = &self.source.topic;
        tracing::warn!(%topic, messages = waiting.len(), "pulsar source: {why}; redelivering");
        sleep_unless_stopped(&mut self.stop, self.shared.config.redelivery_delay).await;
        for message in waiting {
            session
                .consumer
                .nack(message)
                .await
                .map_err(|e| format!("negatively acknowledging: {e}"))?;
        }
        telemetry::messages(topic, "nacked", waiting.len());
        Ok(false)
    }

    /// Stores a copy of `message` on the dead-letter topic, waiting for the
    /// broker's receipt.
    async fn dead_letter(
        &self,
        producer: &mut Producer<TokioExecutor>,
        message: &Message<Vec<u8>>,
        reason: &str,
    ) -> Result<(), String> {
        let config = &self.shared.config;
        let sending = async {
            producer
                .send_non_blocking(dead_letter::dead_letter(message, reason))
                .await?
                .await
        };
        match tokio::time::timeout(config.operation_timeout, sending).await {
            Ok(Ok(_receipt)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "dead-lettering to {}: {e}",
                config.dead_letter_topic
            )),
            Err(_) => Err(format!(
                "dead-lettering to {}: no receipt within {:?}",
                config.dead_letter_topic, config.operation_timeout
            )),
        }
    }

    /// Closes the subscription's consumer, so the broker redelivers what it
    /// holds unacknowledged at once, not after a broker-side timeout.
    async fn close(&self, mut session: Session) {
        let closing = async {
            let consumer = session.consumer.close().await;
            let producer = session.dead_letters.close().await;
            consumer.and(producer)
        };
        match tokio::time::timeout(self.shared.config.operation_timeout, closing).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(topic = %self.source.topic, error = %e, "pulsar source: closing")
            }
            Err(_) => {
                tracing::debug!(topic = %self.source.topic, "pulsar source: closing timed out")
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

async fn sleep_unless_stopped(stop: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|stop| *stop) => {}
    }
}

async fn ack(
    consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
    message: &Message<Vec<u8>>,
) -> Result<(), String> {
    consumer
        .ack(message)
        .await
        .map_err(|e| format!("acknowledging: {e}"))
}

/// The record a message's alerts were read from, the same on every
/// delivery: standalone, a redelivery after a crash opens the message's
/// incidents again under the ids they had (their events and notifications
/// may have gone out before the crash).
fn message_record(message: &Message<Vec<u8>>) -> AlertRecord {
    let id = message.message_id();
    // -1 (none) becomes u64::MAX: only sameness matters here.
    let position = [
        id.ledger_id,
        id.entry_id,
        id.partition.unwrap_or(-1) as u64,
        id.batch_index.unwrap_or(-1) as u64,
    ];
    let published = Timestamp::from_millis(message.metadata().publish_time as i64);
    AlertRecord::new(0, &message.topic, &position, Some(published))
}

fn received(
    next: Option<Result<Message<Vec<u8>>, pulsar::Error>>,
) -> Result<Message<Vec<u8>>, String> {
    match next {
        Some(Ok(message)) => Ok(message),
        Some(Err(e)) => Err(format!("receiving: {e}")),
        None => Err("the consumer stopped".into()),
    }
}
