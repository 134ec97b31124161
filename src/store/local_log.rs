//! One shard's live incidents, change frames and source offsets, kept as an
//! append-only log of segment files. A commit is one record appended with
//! one `write` and one `fdatasync`: on this machine's disk that flush takes
//! a fraction of a millisecond where redb's commit, about 230 scattered
//! page writes, took 9 ms (benches/README, "What bounds the embedded
//! store"). What each incident's current bytes are and where they lie is
//! kept in memory, rebuilt by reading the log when it opens.
//!
//! The log grows by whole segments and shrinks by whole segments: when it
//! holds more than twice its current bytes (plus a segment), the oldest
//! segment's incidents are written whole again at the head, the archived
//! incidents it holds are handed to the caller to keep elsewhere, and the
//! segment is handed back to be deleted (`RetiredSegment`).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use incidentd_actors::model::IncidentId;
use incidentd_actors::ports::{ShardSnapshot, SnapshotBatch, SnapshotWrite, StoreError};

use super::local::unavailable;
use super::local_log_record::{for_each_op, record_of, Op, OP_OVERHEAD};

/// Where a piece of an incident's current bytes lies.
#[derive(Clone, Copy, Debug)]
struct Span {
    segment: u64,
    at: u64,
    len: u32,
}

struct Segment {
    file: File,
    len: u64,
    /// Archive records in it: only then does a compaction read it through.
    archives: u32,
}

pub(super) struct ShardLog {
    dir: PathBuf,
    /// A segment takes no more records once it is this long.
    segment_limit: u64,
    segments: BTreeMap<u64, Segment>,
    /// Per live incident: its whole encoding, then its frames since.
    incidents: HashMap<IncidentId, Vec<Span>>,
    offsets: BTreeMap<String, i64>,
    /// The incidents' spans with their ops' overhead: at most what the log
    /// holds once compacted. Counting the overhead keeps a log of small
    /// frames from wanting a compaction it cannot satisfy.
    live_bytes: u64,
    /// Set when a write or flush failed: what the file holds after it is
    /// unknown (a failed `fdatasync` may have dropped pages it never
    /// reports again), so no commit is taken until the log is read afresh.
    broken: Option<String>,
    /// The last record's buffer, for the next: a fresh one for each commit
    /// faulted in new pages (huge ones, zeroed whole) every time.
    record_buffer: Vec<u8>,
}

/// A record buffer larger than this (a commit of a storm, or of a restore)
/// is not kept for the next commit.
const KEPT_RECORD_BUFFER: usize = 4 << 20;

impl ShardLog {
    /// Opens the log in `dir`, creating it if absent. A torn record at the
    /// end of the last segment (a commit cut short by a crash, never
    /// acknowledged) is cut off; a damaged record anywhere else is refused.
    pub(super) fn open(dir: &Path, segment_limit: u64) -> Result<ShardLog, StoreError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(&format!("create {}", dir.display()), e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| unavailable(&format!("list {}", dir.display()), e))?
        {
            let entry = entry.map_err(|e| unavailable(&format!("list {}", dir.display()), e))?;
            let name = entry.file_name();
            let number = name
                .to_str()
                .and_then(|name| name.strip_suffix(".log"))
                .and_then(|number| number.parse::<u64>().ok());
            if let Some(number) = number {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        let mut log = ShardLog {
            dir: dir.to_path_buf(),
            segment_limit,
            segments: BTreeMap::new(),
            incidents: HashMap::new(),
            offsets: BTreeMap::new(),
            live_bytes: 0,
            broken: None,
            record_buffer: Vec::new(),
        };
        for (i, &number) in numbers.iter().enumerate() {
            let path = log.segment_path(number);
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| unavailable(&format!("open {}", path.display()), e))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| unavailable(&format!("read {}", path.display()), e))?;
            log.segments.insert(
                number,
                Segment {
                    file,
                    len: 0,
                    archives: 0,
                },
            );
            let valid = for_each_op(&bytes, |op, at| log.apply(&op, number, at as u64))
                .map_err(|e| unavailable(&format!("read {}", path.display()), e))?;
            let segment = log.segments.get_mut(&number).expect("inserted above");
            segment.len = valid as u64;
            if valid < bytes.len() {
                if i + 1 < numbers.len() {
                    return Err(unavailable(
                        &format!("read {}", path.display()),
                        format!(
                            "damaged record at byte {valid} of a segment that is not the last; \
                             the log cannot be read past it"
                        ),
                    ));
                }
                tracing::warn!(
                    path = %path.display(),
                    kept = valid,
                    cut = bytes.len() - valid,
                    "cutting a torn record off the end of the local store's log"
                );
                segment
                    .file
                    .set_len(valid as u64)
                    .and_then(|()| segment.file.sync_all())
                    .map_err(|e| unavailable(&format!("cut {}", path.display()), e))?;
            }
        }
        Ok(log)
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:016}.log"))
    }

    /// Applies `op`, whose bytes lie at `at` in segment `segment`.
    fn apply(&mut self, op: &Op, segment: u64, at: u64) {
        match *op {
            Op::Whole(id, bytes) => {
                let span = Span {
                    segment,
                    at,
                    len: bytes.len() as u32,
                };
                self.live_bytes += stored_size(&[span]);
                if let Some(old) = self.incidents.insert(id, vec![span]) {
                    self.live_bytes -= stored_size(&old);
                }
            }
            Op::Append(id, bytes) => {
                // A commit refuses a frame without stored state, so every
                // frame in the log follows its incident's whole.
                if let Some(spans) = self.incidents.get_mut(&id) {
                    spans.push(Span {
                        segment,
                        at,
                        len: bytes.len() as u32,
                    });
                    self.live_bytes += bytes.len() as u64 + OP_OVERHEAD;
                }
            }
            Op::Archive(id, _) | Op::Remove(id) => {
                if let Some(old) = self.incidents.remove(&id) {
                    self.live_bytes -= stored_size(&old);
                }
                if let (Op::Archive(..), Some(segment)) = (op, self.segments.get_mut(&segment)) {
                    segment.archives += 1;
                }
            }
            Op::Offset(source, offset) => {
                self.offsets.insert(source.to_string(), offset);
            }
        }
    }

    /// Everything the shard stored, incidents in id order.
    pub(super) fn load(&self, shard: u32) -> Result<ShardSnapshot, StoreError> {
        let mut ids: Vec<&IncidentId> = self.incidents.keys().collect();
        ids.sort_unstable();
        let mut snapshot = ShardSnapshot {
            incidents: Vec::with_capacity(ids.len()),
            offsets: self.offsets.clone(),
        };
        for id in ids {
            let bytes = self.read(&self.incidents[id])?;
            snapshot
                .incidents
                .push((format!("shard-{shard}/{id}"), bytes));
        }
        Ok(snapshot)
    }

    /// An incident's current bytes (whole and frames since), if it is live.
    pub(super) fn current(&self, id: IncidentId) -> Result<Option<Vec<u8>>, StoreError> {
        self.incidents
            .get(&id)
            .map(|spans| self.read(spans))
            .transpose()
    }

    fn read(&self, spans: &[Span]) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![0; spans_len(spans) as usize];
        let mut filled = 0;
        for span in spans {
            let segment = &self.segments[&span.segment];
            let into = &mut bytes[filled..filled + span.len as usize];
            segment.file.read_exact_at(into, span.at).map_err(|e| {
                unavailable(
                    &format!("read {}", self.segment_path(span.segment).display()),
                    e,
                )
            })?;
            filled += span.len as usize;
        }
        Ok(bytes)
    }

    /// Stores `batch` durably, or nothing of it: a frame for an incident
    /// without stored state refuses the whole batch before anything is
    /// written (`StoreError::NothingToAppendTo`).
    pub(super) fn commit(&mut self, batch: &SnapshotBatch) -> Result<(), StoreError> {
        let mut ops =
            Vec::with_capacity(batch.upserts.len() + batch.archived.len() + batch.offsets.len());
        for (i, (id, write)) in batch.upserts.iter().enumerate() {
            match write {
                SnapshotWrite::Whole(bytes) => ops.push(Op::Whole(*id, bytes)),
                SnapshotWrite::Append(frame) => {
                    let written_whole_before = || {
                        batch.upserts[..i].iter().any(|(earlier, write)| {
                            earlier == id && matches!(write, SnapshotWrite::Whole(_))
                        })
                    };
                    if !self.incidents.contains_key(id) && !written_whole_before() {
                        return Err(StoreError::NothingToAppendTo { id: *id });
                    }
                    ops.push(Op::Append(*id, frame));
                }
            }
        }
        ops.extend(
            batch
                .archived
                .iter()
                .map(|(id, bytes)| Op::Archive(*id, bytes)),
        );
        ops.extend(
            batch
                .offsets
                .iter()
                .map(|(source, offset)| Op::Offset(source, *offset)),
        );
        self.write(&ops)
    }

    /// Takes `id` out of the live set (its bytes were kept elsewhere).
    pub(super) fn remove(&mut self, id: IncidentId) -> Result<(), StoreError> {
        self.write(&[Op::Remove(id)])
    }

    /// Appends `ops` as one record, flushes it, then applies them.
    fn write(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        if let Some(why) = &self.broken {
            return Err(unavailable(
                &format!("write {}", self.dir.display()),
                format!("an earlier write failed ({why}); the log is read afresh on restart"),
            ));
        }
        if ops.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.record_buffer);
        let (record, starts) = record_of(ops, buffer);
        let (number, base) = self.append(&record)?;
        for (op, start) in ops.iter().zip(starts) {
            self.apply(op, number, base + start as u64);
        }
        if record.capacity() <= KEPT_RECORD_BUFFER {
            self.record_buffer = record;
        }
        Ok(())
    }

    /// Appends one record at the head and flushes it; returns the head's
    /// number and where the record starts in it.
    fn append(&mut self, record: &[u8]) -> Result<(u64, u64), StoreError> {
        let head = self.segments.last_key_value().map(|(n, s)| (*n, s.len));
        let number = match head {
            Some((number, len)) if len < self.segment_limit => number,
            Some((number, _)) => self.start_segment(number + 1)?,
            None => self.start_segment(1)?,
        };
        let path = self.segment_path(number);
        let segment = self.segments.get_mut(&number).expect("the head segment");
        let base = segment.len;
        if let Err(e) = segment
            .file
            .write_all(record)
            .and_then(|()| segment.file.sync_data())
        {
            self.broken = Some(format!("{}: {e}", path.display()));
            return Err(unavailable(&format!("append to {}", path.display()), e));
        }
        segment.len += record.len() as u64;
        Ok((number, base))
    }

    fn start_segment(&mut self, number: u64) -> Result<u64, StoreError> {
        let path = self.segment_path(number);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| unavailable(&format!("create {}", path.display()), e))?;
        // The new file's name must be durable before a commit in it is
        // acknowledged.
        sync_dir(&self.dir)?;
        self.segments.insert(
            number,
            Segment {
                file,
                len: 0,
                archives: 0,
            },
        );
        Ok(number)
    }

    /// True when the log holds more than twice its current bytes plus a
    /// segment, and there is an older segment than the head to drop.
    pub(super) fn wants_compaction(&self) -> bool {
        self.segments.len() > 1 && self.bytes() > 2 * self.live_bytes + self.segment_limit
    }

    /// What the log's segments hold (dropped ones not counted).
    pub(super) fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }

    /// Drops the oldest segment from the log. First `keep_archived` is
    /// handed the archived incidents recorded in it, and must store them
    /// durably elsewhere; then the incidents whose whole encoding is in it
    /// are written whole again at the head, with every source's offset.
    /// The segment is returned for its file to be deleted: until then a
    /// crash leaves a log that reads the same, as what was written again
    /// repeats it.
    pub(super) fn compact_oldest(
        &mut self,
        keep_archived: impl FnOnce(Vec<(IncidentId, Vec<u8>)>) -> Result<(), StoreError>,
    ) -> Result<Option<RetiredSegment>, StoreError> {
        if self.segments.len() < 2 {
            return Ok(None); // the head takes the rewrites, so it is never dropped
        }
        let (&oldest, segment) = self.segments.first_key_value().expect("two segments");
        let path = self.segment_path(oldest);
        let mut archived = Vec::new();
        if segment.archives > 0 {
            let mut bytes = vec![0; segment.len as usize];
            segment
                .file
                .read_exact_at(&mut bytes, 0)
                .and_then(|()| {
                    for_each_op(&bytes, |op, _| {
                        if let Op::Archive(id, state) = op {
                            archived.push((id, state.to_vec()));
                        }
                    })
                    .map_err(std::io::Error::other)
                })
                .map_err(|e| unavailable(&format!("read {}", path.display()), e))?;
        }
        keep_archived(archived)?;

        let mut moving = Vec::new();
        for (id, spans) in &self.incidents {
            if spans[0].segment == oldest {
                moving.push((*id, self.read(spans)?));
            }
        }
        let offsets = self.offsets.clone();
        let rewritten: Vec<Op> = moving
            .iter()
            .map(|(id, bytes)| Op::Whole(*id, bytes))
            .chain(
                offsets
                    .iter()
                    .map(|(source, offset)| Op::Offset(source, *offset)),
            )
            .collect();
        self.write(&rewritten)?;

        // Closing the file is cheap: its pages are freed when it is deleted.
        self.segments.remove(&oldest);
        Ok(Some(RetiredSegment { path }))
    }
}

/// A segment compaction dropped from its log: nothing in it is read again,
/// and its file is to be deleted. Deleting a 16 MiB file took 10–17 ms
/// here (the kernel frees its cached pages), which is why it is handed
/// back rather than done while the shard's commits wait.
pub(super) struct RetiredSegment {
    path: PathBuf,
}

impl RetiredSegment {
    /// The shard log's directory.
    pub(super) fn dir(&self) -> &Path {
        self.path
            .parent()
            .expect("a segment lies in its shard's directory")
    }

    /// Deletes the file and makes that durable. A shard's segments must be
    /// deleted oldest first, each durably before the next: were one to come
    /// back after a crash without a newer one, the incidents archived in
    /// the newer one could return from the dead.
    pub(super) fn delete(self) -> Result<(), StoreError> {
        std::fs::remove_file(&self.path)
            .map_err(|e| unavailable(&format!("delete {}", self.path.display()), e))?;
        sync_dir(self.dir())
    }
}

fn spans_len(spans: &[Span]) -> u64 {
    spans.iter().map(|span| u64::from(span.len)).sum()
}

/// What `spans` take in the log at most, with their ops' overhead.
fn stored_size(spans: &[Span]) -> u64 {
    spans_len(spans) + OP_OVERHEAD * spans.len() as u64
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| unavailable(&format!("flush {}", dir.display()), e))
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use incidentd_actors::model::Timestamp;

    use super::super::local_log_record::HEADER_LEN;
    use super::*;

    fn whole(id: IncidentId, bytes: &[u8]) -> SnapshotBatch {
        SnapshotBatch {
            upserts: vec![(id, SnapshotWrite::Whole(Arc::new(bytes.to_vec())))],
            ..SnapshotBatch::default()
        }
    }

    fn append(id: IncidentId, bytes: &[u8]) -> SnapshotBatch {
        SnapshotBatch {
            upserts: vec![(id, SnapshotWrite::Append(Arc::new(bytes.to_vec())))],
            ..SnapshotBatch::default()
        }
    }

    /// The files in a shard log's directory, oldest segment first.
    pub(in crate::store) fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// A crash in the middle of a commit's write leaves part of its record
    /// at the end of the log; it was never acknowledged, so it is cut off,
    /// and the log takes commits after it again.
    #[test]
    fn a_torn_commit_at_the_end_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let a = IncidentId::new(Timestamp(1));
        let mut log = ShardLog::open(dir.path(), 1 << 20).unwrap();
        log.commit(&whole(a, &[1])).unwrap();
        log.commit(&append(a, &[2])).unwrap();
        drop(log);
        let head = segment_files(dir.path()).pop().unwrap();
        let before = std::fs::metadata(&head).unwrap().len();
        let (torn, _) = record_of(&[Op::Append(a, &[3; 100])], Vec::new());
        let mut file = OpenOptions::new().append(true).open(&head).unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);

        let mut log = ShardLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(&head).unwrap().len(), before, "cut off");
        assert_eq!(log.current(a).unwrap(), Some(vec![1, 2]));
        log.commit(&append(a, &[4])).unwrap();
        drop(log);
        let log = ShardLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(log.current(a).unwrap(), Some(vec![1, 2, 4]));
    }

    /// Only the last segment can hold a commit a crash cut short: damage
    /// in an earlier one is refused, not read as the end of the log.
    #[test]
    fn damage_before_the_last_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = IncidentId::new(Timestamp(1));
        // Segments of one commit each.
        let mut log = ShardLog::open(dir.path(), 1).unwrap();
        log.commit(&whole(a, &[1; 32])).unwrap();
        log.commit(&append(a, &[2])).unwrap();
        drop(log);
        let first = segment_files(dir.path()).remove(0);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[HEADER_LEN + 30] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();

        let refused = ShardLog::open(dir.path(), 1).map(|_| ()).unwrap_err();
        assert!(refused.to_string().contains("not the last"), "{refused}");
    }

    /// Many small incidents: their ops' overhead outweighs their bytes, and
    /// a log counting only the bytes would want compaction forever.
    #[test]
    fn a_compacted_log_of_small_incidents_wants_no_more_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShardLog::open(dir.path(), 4096).unwrap();
        for n in 0..1000 {
            let id = IncidentId::new(Timestamp(n));
            for _ in 0..5 {
                log.commit(&whole(id, &[n as u8])).unwrap(); // 4 obsolete
            }
            log.commit(&append(id, &[1])).unwrap();
        }
        let mut compactions = 0;
        while log.wants_compaction() {
            if let Some(retired) = log.compact_oldest(|_| Ok(())).unwrap() {
                retired.delete().unwrap();
            }
            compactions += 1;
            assert!(
                compactions <= 100,
                "still wants compaction after {compactions}"
            );
        }
        assert!(compactions > 0);
        assert_eq!(log.incidents.len(), 1000);
    }

    /// Compaction writes the oldest segment's incidents again at the head
    /// and hands the segment back to be deleted; a crash before the delete
    /// is durable leaves the segment in place, and the log reads the same.
    #[test]
    fn a_compacted_segment_that_comes_back_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            IncidentId::new(Timestamp(1)),
            IncidentId::new(Timestamp(2)),
            IncidentId::new(Timestamp(3)),
        );
        let mut log = ShardLog::open(dir.path(), 1).unwrap();
        let mut first = whole(a, &[1]);
        first
            .upserts
            .push((b, SnapshotWrite::Whole(Arc::new(vec![5]))));
        first
            .upserts
            .push((c, SnapshotWrite::Whole(Arc::new(vec![8]))));
        first.offsets.insert("alerts/0".into(), 7);
        log.commit(&first).unwrap();
        log.commit(&append(a, &[2])).unwrap();
        let mut gone = append(b, &[6]);
        gone.archived.push((c, Arc::new(vec![9])));
        log.commit(&gone).unwrap();
        let oldest = segment_files(dir.path()).remove(0);
        let kept = std::fs::read(&oldest).unwrap();

        let mut handed = Vec::new();
        let retired = log
            .compact_oldest(|archived| {
                handed = archived;
                Ok(())
            })
            .unwrap()
            .expect("a segment to drop");
        assert!(handed.is_empty(), "c was archived in a later segment");
        let expect = |log: &ShardLog| {
            let snapshot = log.load(0).unwrap();
            let mut incidents = snapshot.incidents;
            incidents.sort();
            assert_eq!(
                incidents,
                vec![
                    (format!("shard-0/{a}"), vec![1, 2]),
                    (format!("shard-0/{b}"), vec![5, 6]),
                ]
            );
            assert_eq!(snapshot.offsets.get("alerts/0"), Some(&7));
        };
        expect(&log);
        // A crash before the delete: the segment is read again.
        assert!(oldest.exists(), "deleted only when asked");
        expect(&ShardLog::open(dir.path(), 1).unwrap());
        retired.delete().unwrap();
        assert!(!oldest.exists());
        drop(log);
        expect(&ShardLog::open(dir.path(), 1).unwrap());

        std::fs::write(&oldest, kept).unwrap();
        let mut log = ShardLog::open(dir.path(), 1).unwrap();
        expect(&log);
        // Dropping it again and the two after it: the third's archived
        // incident is handed on.
        for _ in 0..3 {
            log.compact_oldest(|archived| {
                handed.extend(archived);
                Ok(())
            })
            .unwrap()
            .expect("a segment to drop")
            .delete()
            .unwrap();
        }
        assert_eq!(handed, vec![(c, vec![9])]);
        expect(&log);
    }
}
