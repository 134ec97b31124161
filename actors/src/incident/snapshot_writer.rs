use std::sync::Arc;

use crate::model::{Incident, Timestamp};
use crate::ports::SnapshotWrite;

use super::{encode_changes, encode_incident};

/// Decides what a commit stores of a resident incident: the changes since
/// the last snapshot, appended, until the change frames would outgrow the
/// whole encoding; then the whole incident again. So a commit writes about
/// what changed, and a stored incident stays within twice its whole size.
/// A small incident, whose frames are about its whole size (the fields
/// besides alerts and timeline are most of it), is written whole.
#[derive(Default)]
pub(crate) struct SnapshotWriter {
    /// The incident as of the last snapshot written; None: write whole.
    last: Option<LastWrite>,
    /// `last` before the last write, for `undo`.
    before_last: Option<LastWrite>,
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
    fn takes(&self, frame_len: usize) -> bool {
        frame_len * MAX_FRAME_SHARE <= self.whole_len
            && self.stored_len + frame_len <= 2 * self.whole_len
    }
}

impl SnapshotWriter {
    /// Makes the next write whole: the store may not hold the last one.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// Takes back the last write: the store will not get it, so the next
    /// write holds its changes too.
    pub fn undo(&mut self) {
        self.last = self.before_last.take();
    }

    /// What to store of `incident` now; assumes the store will hold every
    /// earlier write of this writer (`forget` when one was lost).
    pub fn write(&mut self, incident: &mut Incident, now: Timestamp) -> SnapshotWrite {
        self.before_last = self.last;
        let mut frame_len = 0;
        if let Some(last) = &mut self.last {
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
        self.last = Some(LastWrite {
            at: now,
            seq: incident.seq,
            whole_len: bytes.len(),
            stored_len: bytes.len(),
            frame_len: frame_len / 2,
        });
        SnapshotWrite::Whole(Arc::new(bytes))
    }
}
