//! Incident events to an Apache Pulsar topic. The partition key and the
//! ordering key are the incident id, so one incident's events stay on one
//! partition and in order for Key_Shared consumers. The producer batches
//! (size, bytes, delay) and compresses; it is (re)connected on demand, with
//! the delivery task's backoff between attempts.

use std::sync::Arc;

use async_trait::async_trait;
use pulsar::compression::{Compression, CompressionLz4, CompressionZstd};
use pulsar::producer::ProducerOptions;
use pulsar::{Producer, Pulsar, TokioExecutor};

use super::outbound::{Ack, Outbound, Transport};
use super::{PulsarCompression, PulsarEventsConfig};

struct PulsarTransport {
    config: PulsarEventsConfig,
    producer: Option<Producer<TokioExecutor>>,
}

impl PulsarTransport {
    async fn connect(&self) -> Result<Producer<TokioExecutor>, String> {
        let config = &self.config;
        let connecting = async {
            let client = Pulsar::builder(config.url.clone(), TokioExecutor)
                .build()
                .await
                .map_err(|e| format!("connecting to {}: {e}", config.url))?;
            let options = ProducerOptions {
                batch_size: Some(config.batch_size),
                batch_byte_size: Some(config.batch_bytes),
                batch_timeout: Some(config.batch_delay),
                compression: Some(match config.compression {
                    PulsarCompression::None => Compression::None,
                    PulsarCompression::Lz4 => Compression::Lz4(CompressionLz4::default()),
                    PulsarCompression::Zstd => Compression::Zstd(CompressionZstd::default()),
                }),
                ..ProducerOptions::default()
            };
            client
                .producer()
                .with_topic(config.topic.clone())
                .with_options(options)
                .build()
                .await
                .map_err(|e| format!("producer for {}: {e}", config.topic))
        };
        tokio::time::timeout(config.produce_timeout, connecting)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {} within {:?}",
                    config.url, config.produce_timeout
                )
            })?
    }
}

#[async_trait]
impl Transport for PulsarTransport {
    async fn send(&mut self, key: &str, payload: &[u8]) -> Result<Ack, String> {
        if self.producer.is_none() {
            self.producer = Some(self.connect().await?);
        }
        let producer = self.producer.as_mut().expect("connected above");
        let sent = producer
            .create_message()
            .with_content(payload.to_vec())
            .with_partition_key(key)
            .with_ordering_key(key.as_bytes().to_vec())
            .send_non_blocking()
            .await;
        match sent {
            Ok(receipt) => Ok(Box::pin(async move {
                receipt.await.map(|_| ()).map_err(|e| e.to_string())
            })),
            Err(e) => {
                // Start over with a new connection on the next attempt.
                self.producer = None;
                Err(e.to_string())
            }
        }
    }
}

/// Starts delivering to `config.topic`; connects on the first event.
pub fn start_pulsar(config: &PulsarEventsConfig) -> Arc<Outbound> {
    let transport = PulsarTransport {
        config: config.clone(),
        producer: None,
    };
    Outbound::start(
        format!("pulsar:{}", config.topic),
        config.filter.clone(),
        config.produce_timeout,
        config.max_backlog,
        transport,
    )
}
