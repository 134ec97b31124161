//! Pulsar helpers for the tests: the broker under test and a subscription
//! that reads a topic from its start.

use pulsar::consumer::{ConsumerOptions, InitialPosition};
use pulsar::{Consumer, Pulsar, SubType, TokioExecutor};

pub fn pulsar_url() -> String {
    std::env::var("INCIDENTD_TEST_PULSAR_URL").expect(
        "INCIDENTD_TEST_PULSAR_URL is not set: run scripts/test.sh, or scripts/services.sh up pulsar and export INCIDENTD_TEST_PULSAR_URL=pulsar://127.0.0.1:6660",
    )
}

pub async fn client() -> Pulsar<TokioExecutor> {
    Pulsar::builder(pulsar_url(), TokioExecutor)
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to Pulsar at {} (scripts/services.sh up pulsar): {e}",
                pulsar_url()
            )
        })
}

/// A durable exclusive subscription to `topic` from its earliest message.
/// Subscribe before anything is produced: Pulsar keeps messages only for
/// existing subscriptions.
pub async fn subscribe(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    subscription: &str,
) -> Consumer<Vec<u8>, TokioExecutor> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(subscription)
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .unwrap_or_else(|e| panic!("subscribing to {topic}: {e}"))
}
