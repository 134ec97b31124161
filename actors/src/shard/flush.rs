use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{ActorId, ActorRef};
use tokio::sync::oneshot;

use crate::engine::EngineError;
use crate::incident::{IncidentMsg, SnapshotReply, SnapshotRequest};
use crate::model::{IncidentId, Timestamp};
use crate::ports::{SnapshotBatch, SnapshotWrite, SourcePosition, StoreError};
use crate::telemetry;

use super::entry::Entry;
use super::resend::hold_back;
use super::supervisor::{ShardMsg, ShardState, Waiter};
use super::ShardContext;

/// How long a flush waits for its incidents' snapshots; one that has not
/// come by then counts as failed. One bound for the whole flush, so
/// incidents stuck together cannot hold the shard's commits for a
/// multiple of it.
const SNAPSHOT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// After failed flushes the shard pauses this (or `flush_interval`, if
/// longer) doubled per consecutive failure, up to `MAX_RETRY_DELAY`: a
/// failing store is not hammered even when `flush_interval` is 0.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);
/// Longest pause between flush retries while the store is failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Callers and alerts waiting for the next flush.
#[derive(Default)]
pub(crate) struct Round {
    pub waiters: Vec<Waiter>,
    /// Alerts taken since the last flush (counted against shard capacity).
    pub alerts: usize,
    /// Some input of the round reached no incident (one could not be
    /// activated): its callers resend.
    pub lost: bool,
    /// The stream positions the round applied: awaited again when its
    /// callers are told to resend.
    pub positions: Vec<SourcePosition>,
}

#[derive(Default)]
pub(crate) struct FlushControl {
    pub in_flight: bool,
    pub scheduled: bool,
    pub failures: u32,
    /// When the last flush began; the next begins `flush_interval` later at
    /// the earliest.
    pub last_started: Option<tokio::time::Instant>,
    /// Incidents whose last snapshot may not have been stored (its commit
    /// failed, or the flush gave up waiting for it): their next snapshot is
    /// written whole, as changes appended to an older state would not hold
    /// everything.
    pub write_whole: HashSet<IncidentId>,
    /// An incident actor failed while a flush was in flight. It restarted
    /// from its last stored state, older than the snapshot that flush may be
    /// storing for it, so that flush's callers are told to resend too.
    pub restarted_in_flight: bool,
}

impl FlushControl {
    /// Whether `id`'s next snapshot must be whole; asking takes the mark.
    pub(super) fn take_write_whole(&mut self, id: &IncidentId) -> bool {
        // Nearly always empty: skip hashing every id.
        !self.write_whole.is_empty() && self.write_whole.remove(id)
    }
}

/// What reached a dirty incident in the current round: no input at all for
/// one that is only to be written again (new, or its last write was lost).
///
/// Asking an incident for its snapshot costs a message to its actor and a
/// turn of its mailbox. So the shard asks with the round's first alerts
/// instead, and the actor answers once it applied them; when nothing else
/// reaches the incident before the commit begins, that answer is the
/// commit's snapshot. Otherwise the commit asks again, and the actor
/// writes its snapshot as if the early one had not been (which the commit
/// then drops). Asking early is worth it only for incidents that mostly
/// take one input per round (a commit per batch): one that takes several
/// would encode itself twice a round (`RoundHistory`).
#[derive(Default)]
pub(crate) struct RoundInput {
    /// Inputs sent this round (alerts, commands, timers), up to 255.
    inputs: u8,
    /// The snapshot the incident sends with its first alerts, and the
    /// actor that sends it.
    early: Option<(ActorId, oneshot::Receiver<SnapshotReply>)>,
}

/// Whether an incident's recent rounds took a single input: a count from 0
/// to 3, up after such a round and down after one with several. Its first
/// alerts of a round ask for its snapshot while the count is at 3. Under a
/// steady trickle (a commit per batch) nearly every round takes one input;
/// at open throttle, where a commit takes several batches, two of three
/// early answers were redone with the count at 2 or more: this keeps them
/// to the incidents that took one input in the last rounds in a row.
#[derive(Clone, Copy)]
pub(crate) struct RoundHistory(u8);

/// A new actor (woken, or just opened) is asked early until a round shows
/// otherwise.
impl Default for RoundHistory {
    fn default() -> Self {
        RoundHistory(3)
    }
}

impl RoundHistory {
    fn ask_early(self) -> bool {
        self.0 == 3
    }

    fn took(&mut self, inputs: u8) {
        self.0 = match inputs {
            0 => self.0,
            1 => (self.0 + 1).min(3),
            _ => self.0.saturating_sub(1),
        };
    }
}

/// One incident's snapshot replies: the one sent with its first alerts of
/// the round, then the one the commit asked for. The last there holds what
/// to store; the early one, when replaced, only which alerts were handed
/// back.
type Replies = [Option<oneshot::Receiver<SnapshotReply>>; 2];

/// One flush, taken out of the shard so it runs while the shard goes on.
pub(crate) struct FlushJob {
    ready: Vec<(IncidentId, SnapshotWrite)>,
    asks: Vec<(IncidentId, ActorId, Replies)>,
    archived: Vec<(IncidentId, Arc<Vec<u8>>)>,
    offsets: BTreeMap<String, i64>,
    round: Round,
}

pub(crate) struct FlushOutcome {
    result: Result<(), String>,
    /// The store refused the batch because another replica owns the shard.
    fenced: bool,
    saved: Vec<(IncidentId, SnapshotWrite)>,
    /// The actor each of `saved` came from (None: a passivated incident).
    written_by: Vec<Option<ActorId>>,
    archived: Vec<(IncidentId, Arc<Vec<u8>>)>,
    unanswered: Vec<IncidentId>,
    bounced: bool,
    round: Round,
    duration: Duration,
}

/// Gathers the snapshots, publishes pending events, then stores the batch.
pub(crate) async fn run(job: FlushJob, context: Arc<ShardContext>) -> FlushOutcome {
    let started = Instant::now();
    // Passivated incidents' summaries are already in the read model.
    let mut summaries: Vec<_> = job
        .ready
        .iter()
        .filter_map(|(id, _)| context.read_model.get(id))
        .collect();
    let mut written_by = vec![None; job.ready.len()];
    let mut upserts = job.ready;
    let mut unanswered = Vec::new();
    let mut bounced = false;
    let deadline = tokio::time::Instant::now() + SNAPSHOT_REPLY_TIMEOUT;
    for (id, actor, replies) in job.asks {
        match gather(replies, deadline).await {
            Some(snapshot) => {
                bounced |= snapshot.bounced;
                if let Some((write, summary)) = snapshot.live {
                    written_by.push(Some(actor));
                    upserts.push((id, write));
                    summaries.push(summary);
                }
            }
            None => unanswered.push(id),
        }
    }
    let mut offsets = job.offsets;
    // Part of the round's input is in no snapshot of this batch: an incident
    // failed before answering, input reached no incident, or alerts handed
    // back open their incident only in the next round. Storing the round's
    // offsets now would let a crash before the next commit skip that input.
    if job.round.lost || bounced || !unanswered.is_empty() {
        for position in &job.round.positions {
            hold_back(&mut offsets, &position.source, position.offset);
        }
    }
    let batch = SnapshotBatch {
        upserts,
        summaries,
        archived: job.archived,
        offsets,
    };
    // Events first: a crash after this point repeats events, never skips one.
    let mut fenced = false;
    let result = match context.sink.flush().await {
        Err(e) => Err(e.to_string()),
        Ok(()) if batch.is_empty() => Ok(()),
        Ok(()) => {
            let storing = Instant::now();
            let saved = context.store.save_batch(context.shard, &batch).await;
            telemetry::batch_stored(storing.elapsed());
            saved.map_err(|e| {
                fenced = matches!(e, StoreError::Fenced { .. });
                e.to_string()
            })
        }
    };
    FlushOutcome {
        result,
        fenced,
        saved: batch.upserts,
        written_by,
        archived: batch.archived,
        unanswered,
        bounced,
        round: job.round,
        duration: started.elapsed(),
    }
}

/// One incident's snapshot from its replies, in order; None when one of
/// them did not come (the actor failed, or `deadline` passed).
async fn gather(replies: Replies, deadline: tokio::time::Instant) -> Option<SnapshotReply> {
    let mut gathered: Option<SnapshotReply> = None;
    for mut reply in replies.into_iter().flatten() {
        // Most replies are there by now: no timer for those.
        let next = match reply.try_recv() {
            Ok(next) => next,
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) => {
                tokio::time::timeout_at(deadline, reply).await.ok()?.ok()?
            }
        };
        gathered = Some(match gathered {
            Some(earlier) => earlier.replaced_by(next),
            None => next,
        });
    }
    gathered
}

/// An input the shard sends a resident incident.
#[derive(Clone, Copy)]
pub(crate) enum Input {
    /// Alerts, taken at the time given: the incident is in use.
    Alerts(Timestamp),
    /// A command, taken at the time given: the incident is in use.
    Command(Timestamp),
    /// A due deadline: not use, so it does not keep the incident running.
    Timer,
}

impl ShardState {
    /// Notes `input` just sent to `id`'s actor for the current round. For
    /// alerts that are the incident's first input of the round, returns
    /// the request to send with them when it is asked early (`RoundInput`).
    pub(super) fn took_input(
        &mut self,
        id: IncidentId,
        actor: &ActorRef<IncidentMsg>,
        input: Input,
    ) -> Option<SnapshotRequest> {
        let mut asked_early = false;
        if let Some(Entry::Active {
            last_input, rounds, ..
        }) = self.incidents.get_mut(&id)
        {
            asked_early = rounds.ask_early();
            if let Input::Alerts(now) | Input::Command(now) = input {
                *last_input = now;
            }
        }
        let round = self.dirty.entry(id).or_default();
        round.inputs = round.inputs.saturating_add(1);
        if !matches!(input, Input::Alerts(_)) || round.inputs > 1 || !asked_early {
            return None;
        }
        let (reply, receiver) = oneshot::channel();
        round.early = Some((actor.get_id(), receiver));
        Some(SnapshotRequest {
            reply,
            whole: self.flush.take_write_whole(&id),
            replaces_early: false,
        })
    }

    /// Marks incidents the next commit writes again, input or not.
    pub(super) fn mark_dirty(&mut self, ids: impl IntoIterator<Item = IncidentId>) {
        for id in ids {
            self.dirty.entry(id).or_default();
        }
    }

    /// Arms the next group commit unless one is armed or running (its end
    /// arms the next). It begins once `flush_interval` has passed since the
    /// last one began, so a shard that was quiet stores at once, and under
    /// load each commit takes everything that arrived while the last ran.
    pub(super) fn schedule_flush(&mut self, myself: &ActorRef<ShardMsg>) {
        // Called for every input: read no clock while nothing is to do.
        if self.flush.in_flight || self.flush.scheduled {
            return;
        }
        let delay = self.flush.last_started.map_or(Duration::ZERO, |at| {
            self.context
                .settings
                .flush_interval
                .saturating_sub(at.elapsed())
        });
        self.schedule_flush_after(myself, delay);
    }

    fn schedule_flush_after(&mut self, myself: &ActorRef<ShardMsg>, delay: Duration) {
        if self.flush.scheduled {
            return;
        }
        self.flush.scheduled = true;
        if delay.is_zero() {
            // Behind what is already in the mailbox: input queued now joins
            // this commit.
            let _ = myself.cast(ShardMsg::Flush);
        } else {
            drop(myself.send_after(delay, || ShardMsg::Flush));
        }
    }

    pub(super) fn start_flush(&mut self, myself: &ActorRef<ShardMsg>) {
        if let Some(job) = self.begin_flush() {
            let context = self.context.clone();
            let shard = myself.clone();
            tokio::spawn(async move {
                let outcome = run(job, context).await;
                let _ = shard.cast(ShardMsg::FlushDone(outcome));
            });
        }
    }

    /// Takes everything dirty into a job. Snapshot requests go through the
    /// incidents' mailboxes, behind every input already sent to them, so
    /// each snapshot holds the effect of everything this round took. An
    /// incident that answered with its first alerts of the round and took
    /// nothing since is not asked again (`RoundInput`).
    pub(super) fn begin_flush(&mut self) -> Option<FlushJob> {
        self.flush.scheduled = false;
        let idle = self.dirty.is_empty()
            && self.archived.is_empty()
            && self.round.waiters.is_empty()
            && self.round.alerts == 0;
        if self.flush.in_flight || idle {
            return None;
        }
        let mut ready = Vec::new();
        let mut asks = Vec::new();
        let (mut with_alerts, mut again, mut at_commit) = (0, 0, 0);
        for (id, input) in self.dirty.drain() {
            match self.incidents.get_mut(&id) {
                Some(Entry::Active { actor, rounds, .. }) => {
                    rounds.took(input.inputs);
                    // An answer from an actor since replaced (passivated and
                    // woken, restarted) does not continue what this one stores.
                    let early = input
                        .early
                        .filter(|(from, _)| *from == actor.get_id())
                        .map(|(_, receiver)| receiver);
                    let answered_early = early.is_some();
                    let ask = !answered_early || input.inputs > 1;
                    match (answered_early, ask) {
                        (true, false) => with_alerts += 1,
                        (true, true) => again += 1,
                        (false, _) => at_commit += 1,
                    }
                    let asked = ask.then(|| {
                        let (reply, receiver) = oneshot::channel();
                        // A failed cast drops `reply`; the job sees it unanswered.
                        let _ = actor.cast(IncidentMsg::Snapshot(SnapshotRequest {
                            reply,
                            // An early request took the mark already.
                            whole: !answered_early && self.flush.take_write_whole(&id),
                            replaces_early: answered_early,
                        }));
                        receiver
                    });
                    asks.push((id, actor.get_id(), [early, asked]));
                }
                Some(Entry::Passive { bytes, writes, .. }) => {
                    let whole = self.flush.take_write_whole(&id);
                    let write = match writes {
                        Some(writes) => writes.take(bytes, whole),
                        None => SnapshotWrite::Whole(bytes.clone()),
                    };
                    ready.push((id, write))
                }
                None => {}
            }
        }
        telemetry::snapshots_asked(with_alerts, again, at_commit);
        self.flush.in_flight = true;
        self.flush.last_started = Some(tokio::time::Instant::now());
        Some(FlushJob {
            ready,
            asks,
            archived: std::mem::take(&mut self.archived),
            offsets: self.resends.storable(&self.offsets),
            round: std::mem::take(&mut self.round),
        })
    }

    pub(super) fn finish_flush(&mut self, myself: &ActorRef<ShardMsg>, outcome: FlushOutcome) {
        self.flush.in_flight = false;
        let FlushOutcome {
            result,
            fenced,
            saved,
            written_by,
            archived,
            unanswered,
            bounced,
            round,
            duration,
        } = outcome;
        telemetry::flush_done(duration, saved.len() + archived.len(), result.is_ok());
        let restarted = std::mem::take(&mut self.flush.restarted_in_flight);
        let lost = round.lost || restarted || !unanswered.is_empty();
        self.flush.write_whole.extend(&unanswered);
        self.mark_dirty(unanswered);
        match result {
            Ok(()) => {
                self.flush.failures = 0;
                self.context.load.set_store_error(None);
                let (mut whole, mut changes) = (0, 0);
                for ((id, write), writer) in saved.into_iter().zip(written_by) {
                    match &write {
                        SnapshotWrite::Whole(bytes) => whole += bytes.len(),
                        SnapshotWrite::Append(frame) => changes += frame.len(),
                    }
                    let Some(Entry::Active {
                        actor,
                        restart_from,
                        ..
                    }) = self.incidents.get_mut(&id)
                    else {
                        continue;
                    };
                    // A frame continues the state its own actor stored; an
                    // actor started since (passivated and woken, restarted)
                    // keeps the state it started from.
                    if writer == Some(actor.get_id()) {
                        if let SnapshotWrite::Whole(_) = write {
                            restart_from.clear();
                        }
                        restart_from.push(write.bytes().clone());
                    }
                }
                telemetry::snapshot_bytes_written(whole, changes);
                if lost {
                    self.ask_to_resend(round.waiters, round.positions);
                    self.context.load.release(round.alerts);
                } else if bounced {
                    // The alerts an incident handed back opened a new
                    // incident after this flush began: wait one more round.
                    self.round.waiters.extend(round.waiters);
                    self.round.positions.extend(round.positions);
                    self.round.alerts += round.alerts;
                } else {
                    for waiter in round.waiters {
                        let _ = waiter.send(Ok(()));
                    }
                    self.context.load.release(round.alerts);
                }
            }
            Err(message) if fenced => {
                // Retrying cannot help: the shard's new owner restored it from
                // the store and goes on from there. Callers resend to it.
                tracing::error!(shard = self.context.shard, error = %message, "shard was claimed by another replica; stopping it here");
                telemetry::shard_fenced();
                self.fenced = true;
                for waiter in round.waiters {
                    let _ = waiter.send(Err(EngineError::NotOwned {
                        shard: self.context.shard,
                    }));
                }
                if !self.stopping {
                    self.teardown(myself, "fenced by a newer owner");
                }
                return;
            }
            Err(message) => {
                self.flush.failures += 1;
                self.context.load.set_store_error(Some(message.clone()));
                tracing::warn!(shard = self.context.shard, failures = self.flush.failures, error = %message, "snapshot flush failed; will retry");
                let saved = saved.into_iter().map(|(id, _)| id);
                self.flush.write_whole.extend(saved.clone());
                self.mark_dirty(saved);
                self.archived.extend(archived);
                // The callers send again whatever the cause; when an incident
                // lost part of the input too, that resend must be applied,
                // not skipped as a replay of what the shard still holds.
                if lost {
                    self.resends.expect(round.positions);
                }
                for waiter in round.waiters {
                    let _ = waiter.send(Err(EngineError::NotDurable(message.clone())));
                }
                // Still only in memory: keep counting them against capacity.
                self.round.alerts += round.alerts;
            }
        }
        self.check_crowding(myself);
        telemetry::shard_state(
            self.context.shard,
            self.context.load.pending(),
            self.live_count(),
            self.resident_count(),
            self.timers.len(),
        );
        let pending = !self.dirty.is_empty()
            || !self.archived.is_empty()
            || !self.round.waiters.is_empty()
            || self.round.alerts > 0;
        if !pending {
            return;
        }
        if self.flush.failures == 0 {
            self.schedule_flush(myself);
        } else {
            let backoff = self.context.settings.flush_interval.max(MIN_RETRY_DELAY)
                * 2u32.saturating_pow(self.flush.failures.min(10));
            self.schedule_flush_after(myself, backoff.min(MAX_RETRY_DELAY));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::{gather, RoundHistory, SNAPSHOT_REPLY_TIMEOUT};
    use crate::incident::SnapshotReply;

    fn reply(bounced: bool) -> SnapshotReply {
        SnapshotReply {
            live: None,
            bounced,
        }
    }

    /// A flush waits `SNAPSHOT_REPLY_TIMEOUT` once for all its snapshots:
    /// two incidents that never answer cost it that long, not twice.
    #[tokio::test(start_paused = true)]
    async fn a_flush_waits_for_late_snapshots_once_however_many() {
        let started = Instant::now();
        let deadline = started + SNAPSHOT_REPLY_TIMEOUT;
        let (_first_stuck, first) = oneshot::channel();
        let (_second_stuck, second) = oneshot::channel();
        assert!(gather([Some(first), None], deadline).await.is_none());
        assert!(gather([Some(second), None], deadline).await.is_none());
        assert_eq!(started.elapsed(), SNAPSHOT_REPLY_TIMEOUT);

        // Replies already there, or coming before the deadline, are taken
        // in order; one from a failed actor fails the incident.
        let (early_reply, early) = oneshot::channel();
        let (later_reply, later) = oneshot::channel();
        early_reply.send(reply(true)).ok().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(SNAPSHOT_REPLY_TIMEOUT / 2).await;
            later_reply.send(reply(false)).ok().unwrap();
        });
        let deadline = Instant::now() + SNAPSHOT_REPLY_TIMEOUT;
        let gathered = gather([Some(early), Some(later)], deadline).await;
        assert!(gathered.unwrap().bounced, "the early reply's bounce stays");
        let (failed_actor, failed) = oneshot::channel::<SnapshotReply>();
        drop(failed_actor);
        assert!(gather([Some(failed), None], deadline).await.is_none());
    }

    #[test]
    fn an_incident_is_asked_early_after_rounds_of_one_input_in_a_row() {
        let mut rounds = RoundHistory::default();
        assert!(rounds.ask_early(), "a new actor is asked early");
        rounds.took(3);
        assert!(!rounds.ask_early(), "after a round of several inputs");
        rounds.took(2);
        rounds.took(0);
        assert!(!rounds.ask_early(), "a round without input changes nothing");
        rounds.took(1);
        assert!(
            !rounds.ask_early(),
            "one single input after two busy rounds"
        );
        rounds.took(1);
        assert!(rounds.ask_early(), "two in a row");
        for _ in 0..5 {
            rounds.took(1);
        }
        rounds.took(2);
        assert!(!rounds.ask_early(), "however many came before");
    }
}
