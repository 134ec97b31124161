//! The copy of a poison message that goes to the dead-letter topic: the
//! original payload, key and properties, plus properties naming why and
//! where it came from, so an operator can fix and replay it.

use pulsar::message::proto::MessageIdData;
use pulsar::producer;

const REASON: &str = "incidentd-reason";
const SOURCE_TOPIC: &str = "incidentd-source-topic";
const SOURCE_MESSAGE_ID: &str = "incidentd-source-message-id";

/// The dead letter of `message`, refused for `reason`.
pub fn dead_letter(
    message: &pulsar::consumer::Message<Vec<u8>>,
    reason: &str,
) -> producer::Message {
    let metadata = message.metadata();
    let mut properties: std::collections::HashMap<String, String> = metadata
        .properties
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    properties.insert(REASON.into(), reason.into());
    properties.insert(SOURCE_TOPIC.into(), message.topic.clone());
    properties.insert(SOURCE_MESSAGE_ID.into(), message_id(message.message_id()));
    producer::Message {
        payload: message.payload.data.clone(),
        properties,
        partition_key: metadata.partition_key.clone(),
        partition_key_b64_encoded: metadata.partition_key_b64_encoded,
        ordering_key: metadata.ordering_key.clone(),
        event_time: metadata.event_time,
        ..producer::Message::default()
    }
}

/// `ledger:entry:partition[:batch index]`, as Pulsar's own dead-letter
/// property ORIGIN_MESSAGE_ID writes it.
pub fn message_id(id: &MessageIdData) -> String {
    let base = format!(
        "{}:{}:{}",
        id.ledger_id,
        id.entry_id,
        id.partition.unwrap_or(-1)
    );
    match id.batch_index {
        Some(index) => format!("{base}:{index}"),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use pulsar::consumer::data::MessageData;
    use pulsar::message::proto::{KeyValue, MessageMetadata};
    use pulsar::Payload;

    use super::*;

    fn received(batch_index: Option<i32>) -> pulsar::consumer::Message<Vec<u8>> {
        pulsar::consumer::Message::new(
            "persistent://public/default/alerts",
            MessageData {
                id: MessageIdData {
                    ledger_id: 7,
                    entry_id: 42,
                    partition: Some(3),
                    batch_index,
                    ..MessageIdData::default()
                },
                batch_size: None,
            },
            Payload {
                metadata: MessageMetadata {
                    partition_key: Some("db".into()),
                    properties: vec![KeyValue {
                        key: "origin".into(),
                        value: "prometheus-eu".into(),
                    }],
                    ..MessageMetadata::default()
                },
                data: b"{nope".to_vec(),
            },
        )
    }

    #[test]
    fn keeps_the_original_and_names_reason_topic_and_id() {
        let letter = dead_letter(&received(None), "malformed JSON at line 1 column 2");
        assert_eq!(letter.payload, b"{nope");
        assert_eq!(letter.partition_key.as_deref(), Some("db"));
        assert_eq!(letter.properties["origin"], "prometheus-eu");
        assert_eq!(
            letter.properties[REASON],
            "malformed JSON at line 1 column 2"
        );
        assert_eq!(
            letter.properties[SOURCE_TOPIC],
            "persistent://public/default/alerts"
        );
        assert_eq!(letter.properties[SOURCE_MESSAGE_ID], "7:42:3");
    }

    #[test]
    fn a_batched_message_id_names_its_index() {
        assert_eq!(message_id(received(Some(5)).message_id()), "7:42:3:5");
    }
}
