use std::sync::Arc;

use crate::model::{Incident, Timestamp};
use crate::ports::SnapshotWrite;

use super::{encode_changes, encode_incident};

/// Decides what a commit stores of a resident incident: the changes since
/// the last snapshot, appended, until the change frames would outgrow the
/// whole encoding; then the whole incident again. So a commit writes about
/// what changed, and a stored incident stays within twice its whole size.
#[derive(Default)]
pub(crate) struct SnapshotWriter {
    /// The incident as of the last snapshot written; None: write whole.
    last: Option<LastWrite>,
}

#[derive(Clone, Copy)]
struct LastWrite {
    at: Timestamp,
    seq: u64,
    whole_len: usize,
    /// The whole encoding and the frames appended to it since.
    stored_len: usize,
    /// The last frame's length: the guess for the next, so a frame that
    /// would not fit is not encoded only to be thrown away.
    frame_len: usize,
}

impl SnapshotWriter {
    /// Makes the next write whole: the store may not hold the last one.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// What to store of `incident` now; assumes the store will hold every
    /// earlier write of this writer (`forget` when one was lost).
    pub fn write(&mut self, incident: &mut Incident, now: Timestamp) -> SnapshotWrite {
        if let Some(last) = &mut self.last {
            let fits = |frame_len: usize| last.stored_len + frame_len <= 2 * last.whole_len;
            if fits(last.frame_len) {
                let frame = encode_changes(incident, last.at, last.seq);
                if fits(frame.len()) {
                    last.at = now;
                    last.seq = incident.seq;
                    last.stored_len += frame.len();
                    last.frame_len = frame.len();
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
            frame_len: 0,
        });
        SnapshotWrite::Whole(Arc::new(bytes))
    }
}
