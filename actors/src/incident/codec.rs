use thiserror::Error;

use crate::model::Incident;

/// First byte of every snapshot; bump it when `Incident` changes shape and
/// teach `decode_incident` the old one.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 2;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("snapshot of incident {key} is empty")]
    Empty { key: String },
    #[error("snapshot of incident {key} has format version {found}; this build reads version {SNAPSHOT_FORMAT_VERSION}")]
    UnknownVersion { key: String, found: u8 },
    #[error("snapshot of incident {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes an incident as one version byte, then bincode of the incident,
/// then (since version 2) bincode of its last fired escalation step, which
/// version 1 did not have.
pub fn encode_incident(incident: &Incident) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    bytes.push(SNAPSHOT_FORMAT_VERSION);
    bincode::serde::encode_into_std_write(incident, &mut bytes, config())
        .expect("writing to a Vec cannot fail and every field is serializable");
    bincode::serde::encode_into_std_write(&incident.escalation.last_fired, &mut bytes, config())
        .expect("writing to a Vec cannot fail and every field is serializable");
    // A passivated incident is kept as these bytes: growth by doubling
    // would leave up to half of the allocation unused for as long.
    bytes.shrink_to_fit();
    bytes
}

/// Decodes a snapshot of this version or version 1; `key` names the entry
/// in errors.
pub fn decode_incident(key: &str, bytes: &[u8]) -> Result<Incident, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let (&version, body) = bytes.split_first().ok_or_else(|| CodecError::Empty {
        key: key.to_string(),
    })?;
    if version != 1 && version != SNAPSHOT_FORMAT_VERSION {
        return Err(CodecError::UnknownVersion {
            key: key.to_string(),
            found: version,
        });
    }
    let (mut incident, mut read): (Incident, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| corrupt(e.to_string()))?;
    if version >= 2 {
        let (last_fired, trailer) = bincode::serde::decode_from_slice(&body[read..], config())
            .map_err(|e| corrupt(e.to_string()))?;
        incident.escalation.last_fired = last_fired;
        read += trailer;
    }
    if read != body.len() {
        return Err(corrupt(format!("{} trailing bytes", body.len() - read)));
    }
    Ok(incident)
}
