//! Pulsar helpers for the tests: the broker under test and a subscription
//! that reads a topic from its start.

use std::time::{Duration, Instant};

use futures::StreamExt;
use pulsar::consumer::{ConsumerOptions, InitialPosition};
use pulsar::{Consumer, Producer, Pulsar, SubType, TokioExecutor};

pub fn pulsar_url() -> String {
    std::env::var("INCIDENTD_TEST_PULSAR_URL").expect(
        "INCIDENTD_TEST_PULSAR_URL is not set: run scripts/test.sh, or scripts/services.sh up pulsar and export INCIDENTD_TEST_PULSAR_URL=pulsar://127.0.0.1:6660",
    )
}

/// Connects, retrying for a while: the broker may be (re)starting.
pub async fn client() -> Pulsar<TokioExecutor> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connect = Pulsar::builder(pulsar_url(), TokioExecutor).build();
        let error = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(client)) => return client,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
        if Instant::now() > deadline {
            panic!(
                "connecting to Pulsar at {} (scripts/services.sh up pulsar): {error}",
                pulsar_url()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A durable subscription to `topic` from its earliest message. Subscribe
/// before anything is produced: Pulsar keeps messages only for existing
/// subscriptions.
pub async fn subscribe(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    subscription: &str,
    sub_type: SubType,
) -> Consumer<Vec<u8>, TokioExecutor> {
    let consumer = client
        .consumer()
        .with_topic(topic)
        .with_subscription(subscription)
        .with_subscription_type(sub_type)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build();
    within_a_minute(&format!("subscribing to {topic}"), consumer).await
}

pub async fn producer(client: &Pulsar<TokioExecutor>, topic: &str) -> Producer<TokioExecutor> {
    let producer = client.producer().with_topic(topic).build();
    within_a_minute(&format!("a producer for {topic}"), producer).await
}

/// The client retries a broker that cannot create the topic's ledger (its
/// bookie down or its disk full) without end: fail with the reason instead
/// of hanging the suite.
async fn within_a_minute<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, pulsar::Error>>,
) -> T {
    match tokio::time::timeout(Duration::from_secs(60), request).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!(
            "{what}: no answer from Pulsar within 60 s; see scripts/services.sh status and \
             Pulsar's log (a bookie that cannot write, e.g. a disk over 99% full, looks like this)"
        ),
    }
}

/// Sends one message and waits for the broker's receipt.
pub async fn produce(producer: &mut Producer<TokioExecutor>, payload: Vec<u8>) {
    producer
        .send_non_blocking(payload)
        .await
        .expect("send")
        .await
        .expect("broker receipt");
}

/// Acknowledges every message of `consumer` and hands its key and payload
/// to `take`, until `take` says it has all it wants or `within` passes.
pub async fn read_until(
    consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
    within: Duration,
    mut take: impl FnMut(Option<&str>, &[u8]) -> bool,
) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(5), consumer.next()).await
        else {
            continue;
        };
        consumer.ack(&message).await.expect("ack");
        if take(message.key().as_deref(), &message.payload.data) {
            return;
        }
    }
}
