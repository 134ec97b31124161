use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::engine::EngineError;
use crate::ports::SourcePosition;

use super::supervisor::{ShardState, Waiter};

/// Stream positions whose input the shard applied and then lost before
/// storing it (an incident actor failed, or could not be activated): their
/// callers were told to send again. Such a resend must be applied, not
/// skipped as a replay of an applied position, or its alerts would be acked
/// without being in any incident.
///
/// Bounded by the input of the rounds that were lost: each entry leaves when
/// its resend arrives, and all of them with the shard when it stops (its next
/// owner starts from the stored offsets, which no commit lets pass an entry).
#[derive(Default)]
pub(crate) struct AwaitedResends {
    by_source: HashMap<String, BTreeSet<i64>>,
}

impl AwaitedResends {
    /// Whether `position` is awaited; it is not any more afterwards.
    pub fn take(&mut self, position: &SourcePosition) -> bool {
        // Nearly always empty: skip hashing the source of every batch.
        if self.by_source.is_empty() {
            return false;
        }
        let Some(offsets) = self.by_source.get_mut(&position.source) else {
            return false;
        };
        let awaited = offsets.remove(&position.offset);
        if offsets.is_empty() {
            self.by_source.remove(&position.source);
        }
        awaited
    }

    /// Awaits `positions` again: their input was lost before it was stored.
    pub fn expect(&mut self, positions: Vec<SourcePosition>) {
        for position in positions {
            self.by_source
                .entry(position.source)
                .or_default()
                .insert(position.offset);
        }
    }

    /// The offsets a commit may store: each source's applied offset, but
    /// short of its first awaited position, so after a crash the stream is
    /// read again from there instead of skipping what was lost.
    pub fn storable(&self, applied: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
        let mut offsets = applied.clone();
        for (source, awaited) in &self.by_source {
            if let Some(first) = awaited.first() {
                hold_back(&mut offsets, source, *first);
            }
        }
        offsets
    }
}

/// Lowers `source`'s offset in `offsets` to just short of `position`, so a
/// replay from the stored offsets reads `position` again.
pub(crate) fn hold_back(offsets: &mut BTreeMap<String, i64>, source: &str, position: i64) {
    if let Some(offset) = offsets.get_mut(source) {
        *offset = (*offset).min(position - 1);
    }
}

impl ShardState {
    /// Answers callers whose input an incident may have lost, and waits for
    /// their input again at the same positions.
    pub(super) fn ask_to_resend(&mut self, waiters: Vec<Waiter>, positions: Vec<SourcePosition>) {
        self.resends.expect(positions);
        for waiter in waiters {
            let _ = waiter.send(Err(EngineError::Retry(
                "an incident restarted before its changes were stored".into(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(source: &str, offset: i64) -> SourcePosition {
        SourcePosition {
            source: source.into(),
            offset,
        }
    }

    #[test]
    fn an_awaited_position_is_taken_once_and_holds_back_its_source() {
        let mut resends = AwaitedResends::default();
        resends.expect(vec![at("alerts/0", 7), at("alerts/0", 9)]);
        let applied = BTreeMap::from([("alerts/0".to_string(), 12), ("alerts/1".to_string(), 4)]);
        assert_eq!(
            resends.storable(&applied),
            BTreeMap::from([("alerts/0".to_string(), 6), ("alerts/1".to_string(), 4)])
        );

        assert!(resends.take(&at("alerts/0", 7)));
        assert!(
            !resends.take(&at("alerts/0", 7)),
            "a second copy is a replay"
        );
        assert!(!resends.take(&at("alerts/1", 4)));
        assert_eq!(resends.storable(&applied)["alerts/0"], 8);

        assert!(resends.take(&at("alerts/0", 9)));
        assert_eq!(resends.storable(&applied), applied);
    }
}
