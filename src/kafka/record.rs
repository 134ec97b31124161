//! What travels on the keyed topic: everything that changes a shard, in the
//! order the shard applies it. Alerts, nearly every record, are binary: one
//! format byte, then bincode of the alerts and their origin. The rest are
//! one JSON object, tagged by `kind` (its first byte is `{`, so the two
//! never mix up; alerts written as JSON by earlier builds are still read).
//! The partition is the shard.

use incidentd_actors::model::{Alert, Command, IncidentId, NewIncident};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::tagged_bincode::{self, DecodeError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyedRecord {
    /// Alerts for this shard from one source message (or one HTTP
    /// request), in incidentd's native form. The shard applies only those of
    /// their routes that land on it (a route elsewhere has its own record on
    /// that shard's partition). One record per message and shard keeps the
    /// record count far below the alert count.
    Alerts {
        alerts: Vec<Alert>,
        /// Where the re-keying step read them: a shard skips an origin it
        /// already applied, so re-reading a source after a crash changes
        /// nothing.
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

/// Where re-keyed alerts were read: a message of a source topic. Each
/// message yields at most one record per shard, so its offset alone tells a
/// shard whether it has applied that record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// "topic/partition".
    pub source: String,
    pub offset: i64,
}

/// First byte of a binary alerts record. JSON records start with `{`.
const BINARY_ALERTS: u8 = 1;

impl KeyedRecord {
    /// Alerts in the binary form: decoding JSON twice per alert (source,
    /// then keyed topic) was a large part of a cluster's CPU per alert.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            KeyedRecord::Alerts { alerts, origin } => {
                tagged_bincode::encode(BINARY_ALERTS, &(alerts, origin))
            }
            other => serde_json::to_vec(other).expect("a keyed record always serializes"),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyedRecord, String> {
        match bytes.split_first() {
            Some((&BINARY_ALERTS, body)) => match tagged_bincode::decode(body) {
                Ok((alerts, origin)) => Ok(KeyedRecord::Alerts { alerts, origin }),
                Err(DecodeError::Trailing(count)) => Err(format!(
                    "not a keyed record: binary alerts followed by {count} stray bytes"
                )),
                Err(e) => Err(format!("not a keyed record: binary alerts: {e}")),
            },
            _ => serde_json::from_slice(bytes).map_err(|e| format!("not a keyed record: {e}")),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            KeyedRecord::Alerts { .. } => "alerts",
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
            KeyedRecord::Alerts {
                alerts: vec![Alert::firing([("alertname".into(), "Disk".into())].into())],
                origin: Some(Origin {
                    source: "alerts/3".into(),
                    offset: 42,
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
        let err = KeyedRecord::decode(br#"{"kind":"alrt"}"#).unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn alerts_are_binary_and_json_alerts_of_earlier_builds_are_still_read() {
        let alerts = KeyedRecord::Alerts {
            alerts: vec![Alert::firing([("alertname".into(), "Disk".into())].into())],
            origin: None,
        };
        let binary = alerts.encode();
        assert_eq!(binary[0], BINARY_ALERTS);
        let json = serde_json::to_vec(&alerts).unwrap();
        assert!(binary.len() < json.len());
        assert_eq!(KeyedRecord::decode(&json).unwrap(), alerts);

        let cut = KeyedRecord::decode(&binary[..binary.len() - 1]).unwrap_err();
        assert!(cut.contains("binary alerts"), "{cut}");
        let mut longer = binary.clone();
        longer.push(0);
        let stray = KeyedRecord::decode(&longer).unwrap_err();
        assert!(stray.contains("1 stray bytes"), "{stray}");
        // A length no message could hold is refused, not allocated.
        let huge = [
            BINARY_ALERTS,
            0xfd,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x0f,
            0x00,
        ];
        assert!(KeyedRecord::decode(&huge).is_err());
    }
}
