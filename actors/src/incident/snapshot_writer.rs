use std::sync::Arc;

use crate::model::{Incident, Timestamp};
use crate::ports::SnapshotWrite;

use super::{encode_changes, encode_counts, encode_incident};

/// Decides what a commit stores of a resident incident: the changes since
/// the last snapshot, appended, until the change frames would outgrow the
/// whole encoding; then the whole incident again. So a commit writes about
/// what changed, and a stored incident stays within twice its whole size.
/// A small incident, whose frames are about its whole size (the fields
/// besides alerts and timeline are most of it), is written whole.
/// An incident that only took duplicates since its last write gets a
/// counts frame (`encode_counts`), a fraction of a change frame, unless
/// the store says replicas that cannot read one share it.
pub(crate) struct SnapshotWriter {
    /// Whether counts frames may be written (`SnapshotStore::takes_counts_frames`).
    counts_frames: bool,
    /// The incident as of the last snapshot written; None: write whole.
    last: Option<LastWrite>,
    /// Whether nothing but alerts reached the incident since `last`:
    /// commands and timers may change fields no event records.
    only_alerts_since_last: bool,
    /// `last` and `only_alerts_since_last` before the last write, for `undo`.
    before_last: Option<(Option<LastWrite>, bool)>,
}

/// A frame is appended only when it is at most this share of the whole.
const MAX_FRAME_SHARE: usize = 4;

#[derive(Clone, Copy)]
struct LastWrite {
    at: Timestamp,
    seq: u64,
    whole_len: usize,
    /// The whole encoding and the frames appended to it since.
    stored_len: usize,
    /// The guess for the next frame's length (the last one's, halved at
    /// every whole write), so a frame that would not be appended is not
    /// encoded only to be thrown away, while one large frame (a burst of
    /// changed alerts) does not stop frames for good.
    frame_len: usize,
}

impl LastWrite {
    fn whole(at: Timestamp, seq: u64, whole_len: usize, frame_len: usize) -> Self {
        LastWrite {
            at,
            seq,
            whole_len,
            stored_len: whole_len,
            frame_len,
        }
    }

    fn takes(&self, frame_len: usize) -> bool {
        frame_len * MAX_FRAME_SHARE <= self.whole_len
            && self.stored_len + frame_len <= 2 * self.whole_len
    }
}

impl SnapshotWriter {
    /// A writer whose first write is whole.
    pub fn new(counts_frames: bool) -> Self {
        SnapshotWriter {
            counts_frames,
            last: None,
            only_alerts_since_last: false,
            before_last: None,
        }
    }

    /// Makes the next write whole: the store may not hold the last one.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// Takes back the last write: the store will not get it, so the next
    /// write holds its changes too.
    pub fn undo(&mut self) {
        let (last, only_alerts) = self.before_last.take().unwrap_or((None, false));
        self.last = last;
        self.only_alerts_since_last &= only_alerts;
    }

    /// Notes that the caller wrote the incident whole (`whole_len` bytes,
    /// at `seq`, as of `at`) from an encoding it held: later writes
    /// continue from that one.
    pub fn wrote_whole(&mut self, whole_len: usize, seq: u64, at: Timestamp) {
        self.before_last = Some((self.last, self.only_alerts_since_last));
        self.last = Some(LastWrite::whole(at, seq, whole_len, 0));
        self.only_alerts_since_last = true;
    }

    /// A command or a timer reached the incident: the next write cannot be
    /// a counts frame.
    pub fn note_other_input(&mut self) {
        self.only_alerts_since_last = false;
    }

    /// What to store of `incident` now; assumes the store will hold every
    /// earlier write of this writer (`forget` when one was lost).
    pub fn write(&mut self, incident: &mut Incident, now: Timestamp) -> SnapshotWrite {
        self.before_last = Some((self.last, self.only_alerts_since_last));
        let only_alerts = std::mem::replace(&mut self.only_alerts_since_last, true);
        let mut frame_len = 0;
        if let Some(last) = &mut self.last {
            // Only duplicates since: no event recorded, nothing else came.
            if self.counts_frames && only_alerts && incident.seq == last.seq {
                let frame = encode_counts(incident, last.at);
                if last.takes(frame.len()) {
                    last.at = now;
                    last.stored_len += frame.len();
                    return SnapshotWrite::Append(Arc::new(frame));
                }
            }
            frame_len = last.frame_len;
            if last.takes(frame_len) {
                let frame = encode_changes(incident, last.at, last.seq);
                frame_len = frame.len();
                if last.takes(frame_len) {
                    last.at = now;
                    last.seq = incident.seq;
                    last.stored_len += frame_len;
                    last.frame_len = frame_len;
                    return SnapshotWrite::Append(Arc::new(frame));
                }
            }
        }
        let bytes = encode_incident(incident);
        self.last = Some(LastWrite::whole(
            now,
            incident.seq,
            bytes.len(),
            frame_len / 2,
        ));
        SnapshotWrite::Whole(Arc::new(bytes))
    }
}
