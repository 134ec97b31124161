use crate::model::OpeningRecord;

/// Which stream record each alert of a list came from, as runs: the alerts
/// from index `.0` on (up to the next run) came from `.1`, None when not from
/// a stream record. An incident takes its id from the record of its first
/// firing alert, also when the alert was first handed to an incident that
/// could not take it, so the runs travel with the alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordRuns(Vec<(usize, Option<OpeningRecord>)>);

impl RecordRuns {
    /// Notes that the alert at `index` (the next one of the list) came from
    /// `record`.
    pub fn push(&mut self, index: usize, record: Option<OpeningRecord>) {
        // No runs at all reads as None: alerts not from a stream (HTTP)
        // allocate nothing.
        let current = self.0.last().and_then(|(_, last)| *last);
        if current != record {
            self.0.push((index, record));
        }
    }

    /// The record the alert at `index` came from.
    pub fn at(&self, index: usize) -> Option<OpeningRecord> {
        self.0
            .iter()
            .take_while(|(first, _)| *first <= index)
            .last()
            .and_then(|(_, record)| *record)
    }

    /// The runs of the alerts from `index` on, counted from there, as when
    /// those alerts are split off their list.
    pub fn split_off(&self, index: usize) -> RecordRuns {
        let mut tail = RecordRuns::default();
        tail.push(0, self.at(index));
        for (first, record) in self.0.iter().filter(|(first, _)| *first > index) {
            tail.0.push((first - index, *record));
        }
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn record(offset: i64) -> Option<OpeningRecord> {
        Some(OpeningRecord {
            time: Timestamp(offset),
            hash: offset as u64,
        })
    }

    #[test]
    fn alerts_find_their_record_also_after_a_split() {
        let mut runs = RecordRuns::default();
        for (index, offset) in [7, 7, 8, 8, 8, 9].into_iter().enumerate() {
            runs.push(index, record(offset));
        }
        runs.push(6, None);
        assert_eq!(runs.0.len(), 4, "one run per record");
        assert_eq!(runs.at(1), record(7));
        assert_eq!(runs.at(2), record(8));
        assert_eq!(runs.at(5), record(9));
        assert_eq!(runs.at(6), None);

        let tail = runs.split_off(3);
        assert_eq!(tail.at(0), record(8));
        assert_eq!(tail.at(1), record(8));
        assert_eq!(tail.at(2), record(9));
        assert_eq!(tail.at(3), None);
        let mut not_from_a_stream = RecordRuns::default();
        not_from_a_stream.push(0, None);
        assert_eq!(not_from_a_stream, RecordRuns::default());
        assert_eq!(not_from_a_stream.at(0), None);
    }
}
