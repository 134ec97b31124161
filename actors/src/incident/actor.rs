use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::model::{Alert, Command, CommandError, Incident, IncidentSummary, Timestamp};
use crate::ports::SnapshotWrite;
use crate::shard::{group_of, ShardContext, ShardMsg};

use super::{encode_incident, take_alerts, RecordRuns, SnapshotWriter};

/// A resident incident: one ractor actor that owns the incident's state and
/// applies its alerts, commands and timers one message at a time.
pub(crate) struct IncidentActor;

pub(crate) struct IncidentArgs {
    pub incident: Incident,
    pub context: Arc<ShardContext>,
    pub shard: ActorRef<ShardMsg>,
}

pub(crate) struct IncidentState {
    incident: Incident,
    context: Arc<ShardContext>,
    shard: ActorRef<ShardMsg>,
    /// Alerts handed back to the shard since the last snapshot: the shard's
    /// flush must then wait one round for the incident they opened.
    bounced_since_snapshot: bool,
    /// Decides whether a snapshot is written whole or as changes. A new
    /// actor writes whole first: the store may hold an older state than the
    /// one it started from.
    writer: SnapshotWriter,
    /// The whole encoding of the last snapshot, while no input has reached
    /// the incident since: passivating it then hands the shard these bytes
    /// instead of encoding the same state again. An incident woken by one
    /// duplicate and passivated after its commit (a storm wider than
    /// `max_resident`) is encoded once, not twice.
    unchanged_since_whole: Option<Arc<Vec<u8>>>,
}

/// What a flush gets from a resident incident.
pub(crate) struct SnapshotReply {
    /// The state to store as live and its summary; None once the incident
    /// was archived: the shard's next flush moves it to the archive, and it
    /// must not come back to the live set meanwhile.
    pub live: Option<(SnapshotWrite, Arc<IncidentSummary>)>,
    pub bounced: bool,
}

/// The shard's request for what the next commit stores of the incident.
pub(crate) struct SnapshotRequest {
    pub reply: oneshot::Sender<SnapshotReply>,
    /// The store may not hold the previous snapshot (its commit failed or
    /// never got it): write the incident whole.
    pub whole: bool,
    /// The snapshot the incident sent with its first alerts of this round
    /// is not stored (more input came after it): write as if it had not
    /// been written, so this one holds its changes too.
    pub replaces_early: bool,
}

impl SnapshotReply {
    /// This reply replaced by a later one of the same actor, which holds
    /// everything it did: only the alerts it says were handed back remain.
    pub fn replaced_by(self, later: SnapshotReply) -> SnapshotReply {
        SnapshotReply {
            live: later.live,
            bounced: self.bounced || later.bounced,
        }
    }
}

impl IncidentMsg {
    /// Alerts, commands and timers may change the incident; the other
    /// messages only read it.
    fn is_input(&self) -> bool {
        matches!(
            self,
            IncidentMsg::Alerts { .. } | IncidentMsg::Command { .. } | IncidentMsg::Timer { .. }
        )
    }
}

pub(crate) type CommandReply = oneshot::Sender<Result<Arc<IncidentSummary>, CommandError>>;

pub(crate) enum IncidentMsg {
    /// Alerts of this incident's group, in arrival order, where they were
    /// read, and when the engine took them. With `snapshot`, the incident
    /// answers with its snapshot once they are applied: the shard asks so
    /// with an incident's first alerts of a round, if its recent rounds took
    /// one input each, which saves the commit a request when nothing else
    /// reaches the incident before it (see the shard's `RoundInput`).
    Alerts {
        alerts: Vec<Alert>,
        records: RecordRuns,
        received: std::time::Instant,
        snapshot: Option<SnapshotRequest>,
    },
    Command {
        command: Command,
        actor: String,
        reply: CommandReply,
    },
    /// A deadline the shard's timer index saw come due; `generation` is the
    /// incident's timer generation when it was armed.
    Timer {
        generation: u64,
    },
    /// What to store of the incident.
    Snapshot(SnapshotRequest),
    /// Reply with the encoded state, stop: the shard keeps the bytes
    /// instead of the actor.
    Passivate(oneshot::Sender<Arc<Vec<u8>>>),
    Get(oneshot::Sender<Option<Incident>>),
    /// Stop after what is already queued; the shard no longer routes here.
    Retire,
    /// Test hook: panics inside the handler, as a bug would.
    #[cfg(test)]
    Crash,
}

impl Actor for IncidentActor {
    type Msg = IncidentMsg;
    type State = IncidentState;
    type Arguments = IncidentArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: IncidentArgs,
    ) -> Result<IncidentState, ActorProcessingErr> {
        let writer = SnapshotWriter::new(args.context.store.takes_counts_frames());
        Ok(IncidentState {
            incident: args.incident,
            context: args.context,
            shard: args.shard,
            bounced_since_snapshot: false,
            writer,
            unchanged_since_whole: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: IncidentMsg,
        state: &mut IncidentState,
    ) -> Result<(), ActorProcessingErr> {
        let context = state.context.clone();
        if message.is_input() {
            state.unchanged_since_whole = None;
            // Any input but alerts may change what no event records, so the
            // next write cannot be a counts frame; a new kind of input is
            // covered here without being named.
            if !matches!(message, IncidentMsg::Alerts { .. }) {
                state.writer.note_other_input();
            }
        }
        let incident = &mut state.incident;
        let now = context.clock.now();
        let mut events = Vec::new();
        let generation_before = incident.timer_generation;
        let mut must_report = false;
        let mut snapshot = None;
        match message {
            IncidentMsg::Alerts {
                alerts,
                records,
                received,
                snapshot: request,
            } => {
                snapshot = request;
                let count = alerts.len();
                let bounced = take_alerts(incident, alerts, &context, now, received);
                if !bounced.is_empty() {
                    state.bounced_since_snapshot = true;
                    let _ = state.shard.cast(ShardMsg::Bounced {
                        from: incident.id,
                        group: group_of(incident),
                        route: Arc::new(incident.route.clone()),
                        records: records.split_off(count - bounced.len()),
                        alerts: bounced,
                    });
                }
            }
            IncidentMsg::Command {
                command,
                actor,
                reply,
            } => {
                let result = incident
                    .apply_command(command, &actor, now, &context.rules, &mut events)
                    .map(|()| Arc::new(incident.summary()));
                let _ = reply.send(result);
            }
            IncidentMsg::Timer { generation } => {
                if generation == incident.timer_generation {
                    incident.fire_due(now, &context.rules, &mut events);
                }
                // Always answer a timer: the shard dropped the entry it fired
                // and needs the current deadline back, changed or not.
                must_report = true;
            }
            IncidentMsg::Snapshot(request) => snapshot = Some(request),
            IncidentMsg::Passivate(reply) => {
                // Unchanged since its last snapshot, the incident's summary
                // in the read model is that snapshot's too.
                let bytes = state.unchanged_since_whole.take().unwrap_or_else(|| {
                    show_in_read_model(&context, incident);
                    Arc::new(encode_incident(incident))
                });
                let _ = reply.send(bytes);
                myself.stop(Some("passivated".into()));
            }
            IncidentMsg::Get(reply) => {
                let _ = reply.send(Some(incident.clone()));
            }
            IncidentMsg::Retire => myself.stop(Some("retired".into())),
            #[cfg(test)]
            IncidentMsg::Crash => panic!("test crash of incident {}", incident.id),
        }
        if !events.is_empty() {
            context.publish(incident, events);
        }
        if must_report || incident.timer_generation != generation_before || incident.archived {
            context.report(&state.shard, incident);
        }
        // After publishing: a flush hands the sink its events only once it
        // has every snapshot, so a stored change never misses its event.
        if let Some(request) = snapshot {
            state.answer_snapshot(request, now);
        }
        Ok(())
    }
}

impl IncidentState {
    fn answer_snapshot(&mut self, request: SnapshotRequest, now: Timestamp) {
        if request.replaces_early {
            self.writer.undo();
        }
        if request.whole {
            self.writer.forget();
        }
        let incident = &mut self.incident;
        let live = show_in_read_model(&self.context, incident)
            .map(|summary| (self.writer.write(incident, now), summary));
        self.unchanged_since_whole = match &live {
            Some((SnapshotWrite::Whole(bytes), _)) => Some(bytes.clone()),
            _ => None,
        };
        let bounced = std::mem::take(&mut self.bounced_since_snapshot);
        let _ = request.reply.send(SnapshotReply { live, bounced });
    }
}

/// Puts the incident's current summary in the read model, unless it was
/// archived: it left the read model then, and a flush or sweep that asked
/// for it before the archiving was handled must not bring it back.
fn show_in_read_model(context: &ShardContext, incident: &Incident) -> Option<Arc<IncidentSummary>> {
    if incident.archived {
        return None;
    }
    let summary = Arc::new(incident.summary());
    context.read_model.insert(summary.clone());
    Some(summary)
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    use super::*;
    use crate::escalation::EscalationPolicies;
    use crate::incident::codec::COUNTS_FRAME;
    use crate::incident::{decode_incident, IncidentRules};
    use crate::model::IncidentId;
    use crate::ports::memory::{CollectingSink, MemoryStore};
    use crate::ports::{Clock, TokioClock};
    use crate::read_model::ReadModel;
    use crate::routing::RouteSettings;
    use crate::shard::ShardLoad;
    use crate::test_support::alert;
    use crate::EngineSettings;

    /// Stands in for the shard: takes its incident's reports and drops them.
    struct NoShard;

    impl Actor for NoShard {
        type Msg = ShardMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<ShardMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A resident incident of one firing alert, as its shard starts it.
    async fn resident_incident() -> ActorRef<IncidentMsg> {
        let settings = EngineSettings::default();
        let rules = IncidentRules::new(EscalationPolicies::default(), &settings);
        let clock = TokioClock::new();
        // Repeats within five minutes are duplicates, as under the default route.
        let route = RouteSettings {
            dedup_window: std::time::Duration::from_secs(300),
            ..RouteSettings::manual()
        };
        let incident = Incident::open(
            IncidentId::new(clock.now()),
            ("acme", "db:{}"),
            &Arc::new(route),
            &alert(&[("instance", "a")]),
            clock.now(),
            &rules,
            &mut Vec::new(),
        );
        let context = Arc::new(ShardContext {
            shard: 0,
            settings,
            rules,
            clock: Arc::new(clock),
            sink: Arc::new(CollectingSink::default()),
            store: Arc::new(MemoryStore::default()),
            read_model: Arc::new(ReadModel::default()),
            load: Arc::new(ShardLoad::new(0, 10)),
        });
        let (shard, _) = Actor::spawn(None, NoShard, ()).await.expect("shard");
        let args = IncidentArgs {
            incident,
            context,
            shard,
        };
        let (actor, _) = Actor::spawn(None, IncidentActor, args)
            .await
            .expect("incident");
        actor
    }

    async fn snapshot(actor: &ActorRef<IncidentMsg>) -> SnapshotWrite {
        let (reply, answer) = oneshot::channel();
        let request = SnapshotRequest {
            reply,
            whole: false,
            replaces_early: false,
        };
        actor.cast(IncidentMsg::Snapshot(request)).expect("send");
        let (write, _) = answer.await.expect("answer").live.expect("live");
        write
    }

    async fn passivate(actor: &ActorRef<IncidentMsg>) -> Arc<Vec<u8>> {
        let (reply, bytes) = oneshot::channel();
        actor.cast(IncidentMsg::Passivate(reply)).expect("send");
        bytes.await.expect("passivated")
    }

    fn is_counts_frame(write: &SnapshotWrite) -> bool {
        matches!(write, SnapshotWrite::Append(frame) if frame[0] == COUNTS_FRAME)
    }

    /// The alert the incident opened with, again: a duplicate.
    fn duplicate() -> IncidentMsg {
        IncidentMsg::Alerts {
            alerts: vec![alert(&[("instance", "a")])],
            records: RecordRuns::default(),
            received: std::time::Instant::now(),
            snapshot: None,
        }
    }

    /// A timer (or any input but alerts) may change what no event
    /// records, so the duplicates after it are not stored as a counts
    /// frame, which would leave that change out.
    #[tokio::test]
    async fn after_a_timer_duplicates_are_not_a_counts_frame() {
        let actor = resident_incident().await;
        snapshot(&actor).await;
        actor.cast(duplicate()).expect("send");
        assert!(
            is_counts_frame(&snapshot(&actor).await),
            "duplicates alone are a counts frame"
        );
        // One that finds nothing due: the writer is told of it all the same.
        actor
            .cast(IncidentMsg::Timer { generation: 0 })
            .expect("send");
        actor.cast(duplicate()).expect("send");
        assert!(!is_counts_frame(&snapshot(&actor).await));
    }

    #[tokio::test]
    async fn passivating_right_after_a_whole_snapshot_hands_back_its_bytes() {
        let actor = resident_incident().await;
        let SnapshotWrite::Whole(stored) = snapshot(&actor).await else {
            panic!("a new actor writes its incident whole first");
        };
        let passivated = passivate(&actor).await;
        assert!(
            Arc::ptr_eq(&stored, &passivated),
            "the snapshot's encoding is handed back, not encoded again"
        );
    }

    #[tokio::test]
    async fn input_after_the_snapshot_is_in_the_passivated_state() {
        let actor = resident_incident().await;
        let SnapshotWrite::Whole(stored) = snapshot(&actor).await else {
            panic!("a new actor writes its incident whole first");
        };
        let alerts = IncidentMsg::Alerts {
            alerts: vec![alert(&[("instance", "b")])],
            records: RecordRuns::default(),
            received: std::time::Instant::now(),
            snapshot: None,
        };
        actor.cast(alerts).expect("send");
        let passivated = passivate(&actor).await;
        let before = decode_incident("stored", &stored).expect("decodes");
        let after = decode_incident("passivated", &passivated).expect("decodes");
        assert_eq!(before.alerts.len(), 1);
        assert_eq!(
            after.alerts.len(),
            2,
            "the alert that came after the snapshot is kept"
        );
    }
}
