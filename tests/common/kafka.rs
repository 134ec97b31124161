//! Kafka helpers for the tests: the broker under test, names unique to a
//! run, topics created and visible, a reader from the first message.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;

pub fn brokers() -> String {
    std::env::var("INCIDENTD_TEST_KAFKA_BROKERS").expect(
        "INCIDENTD_TEST_KAFKA_BROKERS is not set: run scripts/test.sh, or scripts/services.sh up kafka and export INCIDENTD_TEST_KAFKA_BROKERS=127.0.0.1:9192",
    )
}

/// Names unique to one test run, so reruns never see old data.
pub struct Names {
    pub run: String,
}

impl Names {
    pub fn new(test: &str) -> Names {
        Names {
            run: format!("{test}-{}", ulid::Ulid::new().to_string().to_lowercase()),
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.run)
    }
}

pub async fn create_topics(topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("kafka admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating topics on {} failed (is Kafka up? scripts/services.sh up kafka): {e}",
                brokers()
            )
        });
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("creating {topic}: {e}"));
    }
    // Created is not yet visible everywhere: wait until metadata shows them.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, partitions) in topics {
        loop {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .expect("kafka metadata");
            let visible = metadata.topics().iter().any(|t| {
                t.name() == *name
                    && t.error().is_none()
                    && t.partitions().len() == *partitions as usize
            });
            if visible {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} not visible after 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A consumer of `topic` from its first message, in a group of its own.
pub fn reader(names: &Names, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}.check", names.run))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("kafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}
