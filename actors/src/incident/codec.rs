use thiserror::Error;

use crate::model::{AlertState, CompactString, FiredStep, Incident, TimelineEntry, Timestamp};

/// First byte of every stored incident; bump it when `Incident` changes
/// shape and teach `decode_incident` the old one.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 3;

/// First byte of a change frame. Since version 3 a stored incident is its
/// whole encoding followed by any number of change frames, so a commit can
/// append what changed (a few hundred bytes) instead of rewriting the whole
/// (up to tens of KB once the alert map and timeline fill up).
const CHANGES_FRAME: u8 = 0x80;

/// First byte of a counts frame: what duplicates change (the incident's
/// alert counters, and each repeated alert's count and last-seen time),
/// for the commits of an incident that took only alerts and recorded no
/// event since its last write. Without the incident's other fields, the
/// timeline and the alerts' summaries, it is a few dozen bytes an alert,
/// where a change frame carries all of them. Builds from before it (it
/// came after version 3) cannot read it.
pub(super) const COUNTS_FRAME: u8 = 0x81;

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

fn write<T: serde::Serialize + ?Sized>(value: &T, bytes: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(value, bytes, config())
        .expect("writing to a Vec cannot fail and every field is serializable");
}

/// Encodes a whole incident: one version byte, bincode of the incident,
/// then bincode of its last fired escalation step (which the incident's
/// serde form skips).
pub fn encode_incident(incident: &Incident) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    bytes.push(SNAPSHOT_FORMAT_VERSION);
    write(incident, &mut bytes);
    write(&incident.escalation.last_fired, &mut bytes);
    // A passivated incident is kept as these bytes: growth by doubling
    // would leave up to half of the allocation unused for as long.
    bytes.shrink_to_fit();
    bytes
}

/// Encodes what changed in `incident` since it was last encoded at `since`,
/// when its `seq` was `seq`: a frame to append to that encoding. It holds the
/// incident without its alerts and timeline (small, and replaces the one
/// before), every alert seen at or after `since` (every change to an alert
/// sets its `last_seen`, and the engine's clock never goes back), the
/// timeline entries after `seq`, and the timeline's length, which tells the
/// decoder how many old entries the cap dropped. Applying a frame twice
/// gives the same incident, so a commit retried after an unclear failure
/// does no harm.
///
/// The alerts and timeline are moved out of `incident` while its other
/// fields are written, and back, rather than cloned.
pub fn encode_changes(incident: &mut Incident, since: Timestamp, seq: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    bytes.push(CHANGES_FRAME);
    let alerts = std::mem::take(&mut incident.alerts);
    let timeline = std::mem::take(&mut incident.timeline);
    write(&*incident, &mut bytes);
    incident.alerts = alerts;
    incident.timeline = timeline;
    write(&incident.escalation.last_fired, &mut bytes);
    write_alerts_seen_since(incident, since, &mut bytes, |fingerprint, alert| {
        (fingerprint, alert)
    });
    let first_new = incident.timeline.partition_point(|entry| entry.seq <= seq);
    write(&((incident.timeline.len() - first_new) as u64), &mut bytes);
    for entry in incident.timeline.range(first_new..) {
        write(entry, &mut bytes);
    }
    write(&(incident.timeline.len() as u64), &mut bytes);
    bytes
}

/// Encodes what duplicates changed in `incident` since it was last encoded
/// at `since` (at its current `seq`): its alert counters, and the count and
/// last-seen time of every alert seen at or after `since`. Only for an
/// incident that took nothing but alerts and recorded no event since: its
/// other fields are as that encoding has them. Applying it twice gives the
/// same incident.
pub fn encode_counts(incident: &Incident, since: Timestamp) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(COUNTS_FRAME);
    let counters = (
        incident.seq,
        incident.total_alerts,
        incident.duplicate_alerts,
        incident.dropped_alerts,
    );
    write(&counters, &mut bytes);
    write_alerts_seen_since(incident, since, &mut bytes, |fingerprint, alert| {
        (fingerprint, alert.count, alert.last_seen)
    });
    bytes
}

/// Writes how many of the incident's alerts were seen at or after `since`
/// (every change to an alert sets its `last_seen`), then `item` of each.
fn write_alerts_seen_since<'a, T: serde::Serialize>(
    incident: &'a Incident,
    since: Timestamp,
    bytes: &mut Vec<u8>,
    item: impl Fn(&'a CompactString, &'a AlertState) -> T,
) {
    // Bincode writes the count first. The items are written first instead
    // and the count put in front of them after, so the alerts are walked
    // once (a second walk was most of a counts frame's cost).
    let start = bytes.len();
    let mut count = 0u64;
    for (fingerprint, alert) in &incident.alerts {
        if alert.last_seen >= since {
            write(&item(fingerprint, alert), bytes);
            count += 1;
        }
    }
    let mut length = [0u8; 16];
    let written = bincode::serde::encode_into_slice(count, &mut length, config())
        .expect("a varint u64 takes at most 9 bytes");
    bytes.splice(start..start, length[..written].iter().copied());
}

/// Reads bincode values one after another from a stored incident.
struct Reader<'a> {
    key: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn read<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        let (value, read) = bincode::serde::decode_from_slice(&self.bytes[self.at..], config())
            .map_err(|e| self.corrupt(e.to_string()))?;
        self.at += read;
        Ok(value)
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = self.bytes.get(self.at).copied();
        self.at += 1;
        byte
    }

    fn corrupt(&self, reason: String) -> CodecError {
        CodecError::Corrupt {
            key: self.key.to_string(),
            reason,
        }
    }
}

/// Decodes a stored incident of this version (the whole encoding and its
/// change frames) or of versions 1 and 2 (a whole encoding only; version 1
/// without the last fired step); `key` names the entry in errors.
pub fn decode_incident(key: &str, bytes: &[u8]) -> Result<Incident, CodecError> {
    let mut reader = Reader { key, bytes, at: 0 };
    let version = reader.byte().ok_or_else(|| CodecError::Empty {
        key: key.to_string(),
    })?;
    if !(1..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
        return Err(CodecError::UnknownVersion {
            key: key.to_string(),
            found: version,
        });
    }
    let mut incident: Incident = reader.read()?;
    if version >= 2 {
        incident.escalation.last_fired = reader.read()?;
    }
    while reader.at < bytes.len() {
        match reader.byte() {
            Some(CHANGES_FRAME) if version >= 3 => {
                incident = apply_changes(incident, &mut reader)?;
            }
            Some(COUNTS_FRAME) if version >= 3 => apply_counts(&mut incident, &mut reader)?,
            _ => {
                return Err(reader.corrupt(format!(
                    "{} trailing bytes",
                    bytes.len() - reader.at.min(bytes.len())
                )))
            }
        }
    }
    incident.firing_alerts = incident.count_firing_alerts();
    Ok(incident)
}

/// Reads one counts frame (after its first byte) into `incident`.
fn apply_counts(incident: &mut Incident, reader: &mut Reader) -> Result<(), CodecError> {
    let (seq, total, duplicates, dropped): (u64, u64, u64, u64) = reader.read()?;
    if seq != incident.seq {
        return Err(reader.corrupt(format!(
            "a counts frame for seq {seq} follows seq {}",
            incident.seq
        )));
    }
    incident.total_alerts = total;
    incident.duplicate_alerts = duplicates;
    incident.dropped_alerts = dropped;
    let count: u64 = reader.read()?;
    for _ in 0..count {
        let (fingerprint, times, last_seen): (CompactString, u64, Timestamp) = reader.read()?;
        let Some(alert) = incident.alerts.get_mut(&fingerprint) else {
            return Err(reader.corrupt(format!(
                "a counts frame names alert {fingerprint}, which the incident lacks"
            )));
        };
        alert.count = times;
        alert.last_seen = last_seen;
    }
    Ok(())
}

/// Reads one change frame (after its first byte) over `incident`.
fn apply_changes(incident: Incident, reader: &mut Reader) -> Result<Incident, CodecError> {
    let Incident {
        mut alerts,
        mut timeline,
        ..
    } = incident;
    let mut changed: Incident = reader.read()?;
    changed.escalation.last_fired = reader.read::<Option<FiredStep>>()?;
    let count: u64 = reader.read()?;
    for _ in 0..count {
        let (fingerprint, alert): (CompactString, AlertState) = reader.read()?;
        alerts.insert(fingerprint, alert);
    }
    let count: u64 = reader.read()?;
    let last_seq = timeline.back().map_or(0, |entry| entry.seq);
    for _ in 0..count {
        let entry: TimelineEntry = reader.read()?;
        // A frame applied twice (a retried commit) adds nothing the second time.
        if entry.seq > last_seq {
            timeline.push_back(entry);
        }
    }
    let len: u64 = reader.read()?;
    while timeline.len() as u64 > len {
        timeline.pop_front();
    }
    changed.alerts = alerts;
    changed.timeline = timeline;
    Ok(changed)
}
