//! Incident events on an Apache Pulsar topic, against the real broker that
//! `scripts/services.sh up pulsar` starts (`scripts/test.sh` does), named
//! by INCIDENTD_TEST_PULSAR_URL.

mod common;

use std::time::{Duration, Instant};

use common::events::{incidents_with_notes, SeqOrder};
use common::Service;
use futures::StreamExt;
use pulsar::{consumer::ConsumerOptions, Consumer, Pulsar, SubType, TokioExecutor};

fn pulsar_url() -> String {
    std::env::var("INCIDENTD_TEST_PULSAR_URL").expect(
        "INCIDENTD_TEST_PULSAR_URL is not set: run scripts/test.sh, or scripts/services.sh up pulsar and export INCIDENTD_TEST_PULSAR_URL=pulsar://127.0.0.1:6660",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_events_reach_a_pulsar_topic_in_order_per_incident() {
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let topic = format!("persistent://public/default/events-{run}");
    let client = Pulsar::builder(pulsar_url(), TokioExecutor)
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to Pulsar at {} (scripts/services.sh up pulsar): {e}",
                pulsar_url()
            )
        });
    // Subscribed first: Pulsar keeps messages only for subscriptions.
    let mut consumer: Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(&topic)
        .with_subscription(format!("check-{run}"))
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default())
        .build()
        .await
        .expect("pulsar consumer");
    let config = format!(
        "[engine]\nshards = 8\n[routing]\ngroup_by = [\"alertname\"]\n[[events.pulsar]]\nurl = \"{}\"\ntopic = \"{topic}\"\n",
        pulsar_url()
    );
    let service = Service::start(&config).await;
    let last_seq = incidents_with_notes(&service, 100, 5).await;

    let mut order = SeqOrder::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while order.seen != last_seq && Instant::now() < deadline {
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(5), consumer.next()).await
        else {
            continue;
        };
        let key = message.key();
        order.check(key.as_deref(), &message.payload.data);
        consumer.ack(&message).await.expect("ack");
    }
    assert_eq!(
        order.seen, last_seq,
        "every incident's events, up to its last seq"
    );
}
