//! What travels on the keyed topic: everything that changes a shard, in the
//! order the shard applies it. One JSON object per record, tagged by `kind`;
//! the record key is the group key (alerts) or the incident id (the rest),
//! the partition is the shard.

use incidentd_actors::model::{Alert, Command, IncidentId, NewIncident};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyedRecord {
    /// An alert, in incidentd's native form. The shard applies only those
    /// of its routes that land on it (a `continue` route elsewhere has its
    /// own record on that shard's partition).
    Alert {
        alert: Alert,
        /// Where the re-keying step read it ("topic/partition" and offset):
        /// a shard skips an origin it already applied, so re-reading a
        /// source after a crash changes nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    /// A command for one incident.
    Command {
        incident: IncidentId,
        command: Command,
        actor: String,
        /// Lets the replica that accepted the request answer with the
        /// outcome when it also owns the shard.
        request: Ulid,
    },
    /// An incident opened by hand, under the id the API chose.
    Create {
        incident: IncidentId,
        new: NewIncident,
        actor: String,
        request: Ulid,
    },
    /// A command for whatever incident `probe`'s group has now (a PagerDuty
    /// acknowledge names a dedup key, not an incident).
    GroupCommand {
        probe: Alert,
        command: Command,
        actor: String,
    },
}

/// Where a re-keyed alert was read: a message of a source topic, and the
/// alert's place in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// "topic/partition".
    pub source: String,
    pub offset: i64,
    /// The alert's index in its message (a message may hold many).
    #[serde(default)]
    pub index: u32,
}

impl Origin {
    /// One number per alert, growing along the source partition: what a
    /// shard records as applied for `source`. A Kafka message (1 MB by
    /// default) holds far fewer than 2^20 alerts.
    pub fn ordinal(&self) -> i64 {
        (self.offset << 20) | i64::from(self.index.min((1 << 20) - 1))
    }
}

impl KeyedRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a keyed record always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyedRecord, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a keyed record: {e}"))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            KeyedRecord::Alert { .. } => "alert",
            KeyedRecord::Command { .. } => "command",
            KeyedRecord::Create { .. } => "create",
            KeyedRecord::GroupCommand { .. } => "group_command",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_named() {
        let records = [
            KeyedRecord::Alert {
                alert: Alert::firing([("alertname".to_string(), "Disk".to_string())].into()),
                origin: Some(Origin {
                    source: "alerts/3".into(),
                    offset: 42,
                    index: 7,
                }),
            },
            KeyedRecord::Command {
                incident: IncidentId::new(incidentd_actors::model::Timestamp::from_millis(5)),
                command: Command::AddNote { text: "hi".into() },
                actor: "alice".into(),
                request: Ulid::new(),
            },
        ];
        for record in records {
            assert_eq!(KeyedRecord::decode(&record.encode()).unwrap(), record);
        }
        let first = Origin {
            source: "a/0".into(),
            offset: 5,
            index: 900,
        };
        let next = Origin {
            offset: 6,
            index: 0,
            ..first.clone()
        };
        assert!(
            first.ordinal() < next.ordinal(),
            "ordinals grow along a partition"
        );
        let err = KeyedRecord::decode(br#"{"kind":"alrt"}"#).unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
    }
}
