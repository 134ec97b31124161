//! The bytes of one commit in a shard's log (`local_log`): a header of the
//! payload's length and a CRC-32 of length and payload, then the payload,
//! a list of operations. A commit is one record, written with one `write`
//! and one `fdatasync`, so it is either wholly in the log or cut off as a
//! torn tail on the next open.

use incidentd_actors::model::IncidentId;

/// Length (u32 LE) and checksum (u32 LE) before each payload.
pub(super) const HEADER_LEN: usize = 8;
/// An incident's op before its bytes: tag, id (u128 LE), length (u32 LE).
const INCIDENT_OP_HEAD: usize = 1 + 16 + 4;
/// The most an incident's op adds to its bytes in the log: its head, and a
/// record header if it is alone in its record.
pub(super) const OP_OVERHEAD: u64 = (INCIDENT_OP_HEAD + HEADER_LEN) as u64;

const WHOLE: u8 = 1;
const APPEND: u8 = 2;
const ARCHIVE: u8 = 3;
const REMOVE: u8 = 4;
const OFFSET: u8 = 5;

/// One change a commit makes to a shard's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Op<'a> {
    /// An incident's whole encoding, replacing what was stored.
    Whole(IncidentId, &'a [u8]),
    /// A change frame, appended to the incident's stored bytes.
    Append(IncidentId, &'a [u8]),
    /// The incident leaves the live set; its final state for the archive.
    Archive(IncidentId, &'a [u8]),
    /// The incident leaves the live set (its bytes were quarantined).
    Remove(IncidentId),
    /// A source's highest applied offset.
    Offset(&'a str, i64),
}

impl Op<'_> {
    /// The bytes `push` writes for the op.
    fn len(&self) -> usize {
        match self {
            Op::Whole(_, bytes) | Op::Append(_, bytes) | Op::Archive(_, bytes) => {
                INCIDENT_OP_HEAD + bytes.len()
            }
            Op::Remove(_) => INCIDENT_OP_HEAD,
            Op::Offset(source, _) => 1 + 4 + source.len() + 8,
        }
    }
}

/// The record of `ops`, built in `buf` (what it held is dropped) with room
/// made for all of them at once (grown by doubling, a commit's record of
/// up to megabytes was copied about once more), and where each op's bytes
/// start in it, so the log can find them again without parsing.
pub(super) fn record_of(ops: &[Op], mut buf: Vec<u8>) -> (Vec<u8>, Vec<usize>) {
    buf.clear();
    buf.reserve_exact(HEADER_LEN + ops.iter().map(Op::len).sum::<usize>());
    buf.resize(HEADER_LEN, 0);
    let starts = ops.iter().map(|op| push(&mut buf, op)).collect();
    let len = (buf.len() - HEADER_LEN) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&buf[..4], &buf[HEADER_LEN..]);
    buf[4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    (buf, starts)
}

/// Writes `op` at the end of `buf`; returns where its bytes start.
fn push(buf: &mut Vec<u8>, op: &Op) -> usize {
    let (tag, id, bytes) = match *op {
        Op::Whole(id, bytes) => (WHOLE, id, bytes),
        Op::Append(id, bytes) => (APPEND, id, bytes),
        Op::Archive(id, bytes) => (ARCHIVE, id, bytes),
        Op::Remove(id) => (REMOVE, id, &[][..]),
        Op::Offset(source, offset) => {
            buf.push(OFFSET);
            buf.extend_from_slice(&(source.len() as u32).to_le_bytes());
            buf.extend_from_slice(source.as_bytes());
            let at = buf.len();
            buf.extend_from_slice(&offset.to_le_bytes());
            return at;
        }
    };
    buf.push(tag);
    buf.extend_from_slice(&u128::from(id.0).to_le_bytes());
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    let at = buf.len();
    buf.extend_from_slice(bytes);
    at
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

/// The payload of the record at the start of `bytes`, if a whole record
/// with a matching checksum is there; None for a torn or damaged one.
/// Zeroes never pass: the checksum covers the length, and no record is empty.
fn record_at(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let payload = bytes.get(HEADER_LEN..HEADER_LEN + len)?;
    (len > 0 && checksum(&header[..4], payload) == crc).then_some(payload)
}

/// Calls `each` with every op of the whole records at the start of `bytes`
/// and where the op's bytes start in `bytes`; returns how many bytes those
/// records fill (less than `bytes.len()` if a torn or damaged one follows).
pub(super) fn for_each_op<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(Op<'a>, usize),
) -> Result<usize, String> {
    let mut at = 0;
    while let Some(payload) = record_at(&bytes[at..]) {
        let base = at + HEADER_LEN;
        for (op, start) in ops(payload).map_err(|e| format!("record at byte {at}: {e}"))? {
            each(op, base + start);
        }
        at = base + payload.len();
    }
    Ok(at)
}

/// The ops of a payload that passed its checksum, each with where its bytes
/// start in the payload. An error means the writer and reader disagree on
/// the format, not a torn write.
fn ops(payload: &[u8]) -> Result<Vec<(Op<'_>, usize)>, String> {
    let mut ops = Vec::new();
    let mut at = 0;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
        let bytes = payload
            .get(*at..*at + n)
            .ok_or_else(|| format!("operation cut short at byte {at} of the record"))?;
        *at += n;
        Ok(bytes)
    };
    let u32_at = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize;
    while at < payload.len() {
        let op_start = at;
        let tag = take(&mut at, 1)?[0];
        if tag == OFFSET {
            let len = u32_at(take(&mut at, 4)?);
            let source = std::str::from_utf8(take(&mut at, len)?)
                .map_err(|e| format!("source name is not UTF-8: {e}"))?;
            let start = at;
            let offset = i64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes"));
            ops.push((Op::Offset(source, offset), start));
            continue;
        }
        let id = u128::from_le_bytes(take(&mut at, 16)?.try_into().expect("16 bytes"));
        let id = IncidentId(id.into());
        let len = u32_at(take(&mut at, 4)?);
        let start = at;
        let bytes = take(&mut at, len)?;
        let op = match tag {
            WHOLE => Op::Whole(id, bytes),
            APPEND => Op::Append(id, bytes),
            ARCHIVE => Op::Archive(id, bytes),
            REMOVE => Op::Remove(id),
            other => return Err(format!("unknown operation {other} at byte {op_start}")),
        };
        ops.push((op, start));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use incidentd_actors::model::Timestamp;

    use super::*;

    #[test]
    fn a_record_reads_back_its_ops_and_where_their_bytes_are() {
        let (a, b) = (IncidentId::new(Timestamp(1)), IncidentId::new(Timestamp(2)));
        let written = [
            Op::Whole(a, b"whole"),
            Op::Append(a, b"frame"),
            Op::Offset("alerts/3", -7),
            Op::Archive(b, b"final"),
            Op::Remove(b),
        ];
        let (record, starts) = record_of(&written, Vec::new());
        assert_eq!(record.capacity(), record.len(), "sized once");

        let payload = record_at(&record).expect("a whole record");
        let read = ops(payload).unwrap();
        assert_eq!(
            read.iter().map(|(op, _)| op.clone()).collect::<Vec<_>>(),
            written
        );
        for ((_, start), written_at) in read.iter().zip(&starts) {
            assert_eq!(start + HEADER_LEN, *written_at);
        }
        assert_eq!(&record[starts[0]..starts[0] + 5], b"whole");
    }

    #[test]
    fn a_torn_or_damaged_record_is_not_read() {
        // In a buffer an earlier record used.
        let (record, _) = record_of(&[Op::Offset("alerts/0", 1)], vec![7; 64]);
        assert!(record_at(&record[..record.len() - 1]).is_none(), "torn");
        let mut damaged = record.clone();
        damaged[HEADER_LEN + 2] ^= 1;
        assert!(record_at(&damaged).is_none(), "damaged");
        assert!(record_at(&[0; 64]).is_none(), "zeroes");
        assert!(record_at(&record).is_some());
    }
}
