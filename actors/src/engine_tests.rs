//! The whole engine in process: shards, actors, timers, flushes and
//! restores, on tokio's paused clock. Every scenario that can runs with
//! passivation on and off and must behave the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::escalation::EscalationPolicy;
use crate::incident::{decode_incident, encode_incident};
use crate::model::{
    Alert, AlertStatus, Change, Command, CommandError, EventKind, Incident, IncidentEvent,
    IncidentId, IncidentStatus, Labels, NewIncident, Severity, Timestamp,
};
use crate::ports::memory::{CollectingSink, MemoryStore};
use crate::ports::{AlertRecord, Progress, SnapshotStore, SourcePosition, TokioClock};
use crate::routing::RouteConfig;
use crate::{compile_rules, Engine, EngineError, EngineSettings, Ports};

const MIN: Duration = Duration::from_secs(60);

const RULES: &str = r#"
[routing]
group_by = ["alertname"]
dedup_window = "5m"
ack_timeout = "30m"
auto_resolve_grace = "2m"
reopen_window = "15m"
policies = { critical = "pager" }

[[escalation_policies]]
id = "pager"
repeat = 1
[[escalation_policies.steps]]
escalate_after = "10m"
targets = ["user:alice"]
channels = ["webhook"]
[[escalation_policies.steps]]
escalate_after = "10m"
targets = ["team:db"]
"#;

#[derive(serde::Deserialize)]
struct RulesFile {
    routing: RouteConfig,
    escalation_policies: Vec<EscalationPolicy>,
}

struct Harness {
    engine: Engine,
    sink: Arc<CollectingSink>,
    store: Arc<MemoryStore>,
}

fn settings(passivation: bool) -> EngineSettings {
    let mut settings = EngineSettings {
        shards: 2,
        retention: 120 * MIN,
        ..EngineSettings::default()
    };
    settings.passivation.enabled = passivation;
    settings.passivation.idle_after = MIN;
    settings.passivation.check_interval = Duration::from_secs(20);
    settings
}

async fn start_with(
    settings: EngineSettings,
    store: Arc<MemoryStore>,
    clock: Arc<TokioClock>,
) -> Harness {
    let rules: RulesFile = toml::from_str(RULES).unwrap();
    let (tree, policies) = compile_rules(&rules.routing, rules.escalation_policies).unwrap();
    let sink = Arc::new(CollectingSink::default());
    let ports = Ports {
        store: store.clone(),
        sink: sink.clone(),
        clock,
    };
    let (engine, _) = Engine::start(settings, tree, policies, ports)
        .await
        .unwrap();
    Harness {
        engine,
        sink,
        store,
    }
}

/// An engine with `settings` on a fresh store and clock.
async fn start_fresh(settings: EngineSettings) -> Harness {
    let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
    start_with(settings, Arc::new(MemoryStore::default()), clock).await
}

async fn start(passivation: bool) -> Harness {
    start_fresh(settings(passivation)).await
}

fn alert(name: &str, instance: &str, status: AlertStatus, severity: Severity) -> Alert {
    crate::test_support::alert_with(
        &[("alertname", name), ("instance", instance)],
        status,
        severity,
    )
}

fn firing(name: &str, instance: &str) -> Alert {
    alert(name, instance, AlertStatus::Firing, Severity::Warning)
}

/// Lets timers, actors and the flush run (time is paused, so this is instant).
async fn settle(h: &Harness) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.sync().await.unwrap();
}

/// The incident as the store holds it now.
async fn stored_incident(h: &Harness, id: IncidentId) -> Incident {
    decode_incident(&id.to_string(), &stored_bytes(h, id).await).unwrap()
}

/// What the store holds for an incident now: its whole encoding and the
/// frames appended to it since.
async fn stored_bytes(h: &Harness, id: IncidentId) -> Vec<u8> {
    for shard in 0..h.engine.loads().len() {
        for (key, bytes) in h.store.load_shard(shard).await.unwrap().incidents {
            if decode_incident(&key, &bytes).unwrap().id == id {
                return bytes;
            }
        }
    }
    panic!("incident {id} is not stored")
}

fn incident_of(h: &Harness, alertname: &str) -> IncidentId {
    let mut ids: Vec<_> = h
        .engine
        .read_model()
        .all()
        .into_iter()
        .filter(|s| s.group_key.contains(&format!("\"{alertname}\"")))
        .map(|s| s.id)
        .collect();
    ids.sort();
    *ids.last()
        .unwrap_or_else(|| panic!("no incident for {alertname}"))
}

/// Per incident (by group key and open order): kinds and changes in seq order,
/// after checking seq runs 1..n with no gap.
fn history(sink: &CollectingSink) -> BTreeMap<(String, usize), Vec<(EventKind, String)>> {
    let mut by_incident: BTreeMap<IncidentId, Vec<IncidentEvent>> = BTreeMap::new();
    for event in sink.events() {
        by_incident
            .entry(event.incident_id)
            .or_default()
            .push(event);
    }
    let mut result: BTreeMap<(String, usize), Vec<(EventKind, String)>> = BTreeMap::new();
    for (id, events) in by_incident {
        for (i, event) in events.iter().enumerate() {
            assert_eq!(
                event.seq,
                i as u64 + 1,
                "incident {id}: gap or repeat at {:?}",
                event.kind
            );
        }
        let group = events[0].group_key.to_string();
        let n = result.keys().filter(|(g, _)| *g == group).count();
        let changes = events
            .iter()
            .map(|e| {
                // Idempotency keys carry the incident id, which differs by run.
                let change = match &e.change {
                    Change::Escalated {
                        step, loop_index, ..
                    } => format!("escalated {step}/{loop_index}"),
                    other => format!("{other:?}"),
                };
                (e.kind, change)
            })
            .collect();
        result.insert((group, n), changes);
    }
    result
}

/// One scenario touching every path; returns its per-incident history.
async fn scenario(settings: EngineSettings) -> BTreeMap<(String, usize), Vec<(EventKind, String)>> {
    let h = start_fresh(settings).await;
    h.engine
        .submit(vec![
            firing("DiskFull", "a"),
            firing("DiskFull", "a"),
            firing("CpuHigh", "b"),
        ])
        .await
        .unwrap();
    h.engine
        .submit(vec![firing("DiskFull", "c")])
        .await
        .unwrap();
    let disk = incident_of(&h, "DiskFull");
    let cpu = incident_of(&h, "CpuHigh");
    h.engine
        .command(disk, Command::Acknowledge, "alice")
        .await
        .unwrap();
    tokio::time::sleep(2 * MIN).await;
    h.engine
        .command(disk, Command::Unacknowledge, "alice")
        .await
        .unwrap();
    h.engine
        .command(
            cpu,
            Command::Snooze {
                until: h_now(&h).plus(5 * MIN),
            },
            "bob",
        )
        .await
        .unwrap();
    // Critical alert joins the CPU incident: severity rises.
    h.engine
        .submit(vec![alert(
            "CpuHigh",
            "d",
            AlertStatus::Firing,
            Severity::Critical,
        )])
        .await
        .unwrap();
    tokio::time::sleep(6 * MIN).await;
    settle(&h).await;
    // Snooze expired: escalation (critical) started at step 1.
    tokio::time::sleep(25 * MIN).await;
    settle(&h).await;
    h.engine
        .submit(vec![
            alert("DiskFull", "a", AlertStatus::Resolved, Severity::Warning),
            alert("DiskFull", "c", AlertStatus::Resolved, Severity::Warning),
        ])
        .await
        .unwrap();
    tokio::time::sleep(3 * MIN).await;
    settle(&h).await;
    assert_eq!(
        h.engine.read_model().get(&disk).unwrap().status,
        IncidentStatus::Resolved
    );
    // Inside the reopen window: same incident.
    h.engine
        .submit(vec![firing("DiskFull", "a")])
        .await
        .unwrap();
    h.engine
        .command(disk, Command::Resolve, "alice")
        .await
        .unwrap();
    // Past the reopen window: a new incident for the same group.
    tokio::time::sleep(20 * MIN).await;
    h.engine
        .submit(vec![firing("DiskFull", "a")])
        .await
        .unwrap();
    settle(&h).await;
    assert_ne!(incident_of(&h, "DiskFull"), disk);
    h.engine.shutdown().await;
    history(&h.sink)
}

fn h_now(h: &Harness) -> Timestamp {
    h.engine.clock.now()
}

#[tokio::test(start_paused = true)]
async fn behaviour_is_identical_with_and_without_passivation() {
    let with = scenario(settings(true)).await;
    let without = scenario(settings(false)).await;
    assert_eq!(with, without);
    // With no room for actors, the shard applies every alert and due timer
    // to a passivated incident itself; commands still wake it.
    let mut no_room = settings(true);
    no_room.passivation.max_resident = 0;
    assert_eq!(scenario(no_room).await, without);
    let disk: Vec<EventKind> = with[&("root:{alertname=\"DiskFull\"}".to_string(), 0)]
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        disk,
        vec![
            EventKind::Created,
            EventKind::AlertAdded,
            EventKind::Acknowledged,
            EventKind::Unacknowledged,
            EventKind::AlertResolved,
            EventKind::AlertResolved,
            EventKind::Resolved,
            EventKind::Reopened,
            EventKind::AlertAdded,
            EventKind::Resolved,
        ]
    );
    let cpu: Vec<String> = with[&("root:{alertname=\"CpuHigh\"}".to_string(), 0)]
        .iter()
        .map(|e| e.1.clone())
        .collect();
    let escalations: Vec<&String> = cpu.iter().filter(|c| c.starts_with("escalated")).collect();
    // Started when the snooze expired (critical by then); 1 + repeat passes.
    assert_eq!(
        escalations,
        vec![
            "escalated 0/0",
            "escalated 1/0",
            "escalated 0/1",
            "escalated 1/1"
        ]
    );
    assert_eq!(
        with.len(),
        3,
        "DiskFull twice (reopen window passed) and CpuHigh once"
    );
}

#[tokio::test(start_paused = true)]
async fn submit_returns_once_stored() {
    let h = start(true).await;
    let submitted = h
        .engine
        .submit(vec![firing("A", "1"), firing("B", "1"), firing("A", "2")])
        .await
        .unwrap();
    assert_eq!(submitted.alerts, 3);
    assert_eq!(
        h.store.live_count(),
        2,
        "both incidents stored before submit returned"
    );
    assert_eq!(h.engine.read_model().len(), 2);
    let a = h.engine.incident(incident_of(&h, "A")).await.unwrap();
    assert_eq!(a.alerts.len(), 2);
}

/// The read model shows what an incident took, also when the batch that
/// opened it holds alerts after the first that change no more than its
/// counters (a duplicate raises no event to refresh the summary with).
#[tokio::test(start_paused = true)]
async fn the_batch_that_opened_an_incident_shows_every_alert_and_counts_its_duplicates() {
    for passivation in [true, false] {
        // The paused clock runs every task on this thread, which sees this recorder.
        let recorder = DebuggingRecorder::new();
        let metrics = recorder.snapshotter();
        let _recording = metrics::set_default_local_recorder(&recorder);
        let h = start(passivation).await;
        h.engine
            .submit(vec![firing("A", "1"), firing("A", "1")])
            .await
            .unwrap();
        let summary = h.engine.read_model().get(&incident_of(&h, "A")).unwrap();
        assert_eq!(summary.total_alerts, 2, "passivation {passivation}");
        assert_eq!(
            counter(&metrics, "incidentd_alerts_deduplicated_total"),
            Some(1),
            "passivation {passivation}"
        );
    }
}

/// A counter's value in what `metrics` recorded, if it was recorded.
fn counter(metrics: &Snapshotter, name: &str) -> Option<u64> {
    metrics
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| match value {
            DebugValue::Counter(count) if key.key().name() == name => Some(count),
            _ => None,
        })
}

#[tokio::test(start_paused = true)]
async fn resolved_alert_without_incident_opens_nothing() {
    let h = start(false).await;
    h.engine
        .submit(vec![alert(
            "Gone",
            "1",
            AlertStatus::Resolved,
            Severity::Warning,
        )])
        .await
        .unwrap();
    assert!(h.engine.read_model().is_empty());
    assert!(h.sink.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn commands_report_typed_errors() {
    let h = start(true).await;
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    let id = incident_of(&h, "A");
    h.engine
        .command(id, Command::Resolve, "alice")
        .await
        .unwrap();
    let err = h
        .engine
        .command(id, Command::Resolve, "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::NotApplicable { .. }), "{err}");
    let unknown = IncidentId::new(Timestamp(1));
    assert_eq!(
        h.engine
            .command(unknown, Command::Acknowledge, "a")
            .await
            .unwrap_err(),
        CommandError::NotFound(unknown)
    );
    let created = h
        .engine
        .create_incident(
            NewIncident {
                tenant: "acme".into(),
                title: "Checkout is slow".into(),
                severity: Severity::Error,
                service: Some("shop".into()),
                team: None,
                assignee: Some("carol".into()),
                labels: Labels::new(),
            },
            "carol",
        )
        .await
        .unwrap();
    assert_eq!(&*created.title, "Checkout is slow");
    let acked = h
        .engine
        .command(created.id, Command::Acknowledge, "carol")
        .await
        .unwrap();
    assert_eq!(acked.status, IncidentStatus::Acknowledged);
    let full = h.engine.incident(created.id).await.unwrap();
    assert_eq!(full.timeline.back().unwrap().actor, "carol");
}

#[tokio::test(start_paused = true)]
async fn a_full_sink_backlog_refuses_alerts_and_commands_until_it_drains() {
    let h = start(false).await;
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    let a = incident_of(&h, "A");
    let events = h.sink.events().len();

    h.sink
        .set_backlog_full(Some("topic t: 10 events not acknowledged"));
    let err = h.engine.submit(vec![firing("B", "1")]).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Retry(reason) if reason.contains("topic t")),
        "{err}"
    );
    let err = h
        .engine
        .command(a, Command::Acknowledge, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Unavailable(_)), "{err}");
    settle(&h).await;
    assert_eq!(h.sink.events().len(), events, "nothing applied meanwhile");

    h.sink.set_backlog_full(None);
    h.engine.submit(vec![firing("B", "1")]).await.unwrap();
    h.engine
        .command(a, Command::Acknowledge, "x")
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn panicking_incident_restarts_from_last_state_and_neighbours_are_untouched() {
    let h = Arc::new(start(false).await);
    h.engine
        .submit(vec![firing("A", "1"), firing("B", "1")])
        .await
        .unwrap();
    let a = incident_of(&h, "A");
    let b = incident_of(&h, "B");
    h.engine
        .command(
            a,
            Command::AddNote {
                text: "stored".into(),
            },
            "x",
        )
        .await
        .unwrap();
    h.engine
        .command(
            b,
            Command::AddNote {
                text: "neighbour".into(),
            },
            "x",
        )
        .await
        .unwrap();
    // One alert is being stored when the actor fails, the next waits for
    // the commit after: neither is in the state it restarts from.
    let submit = |instance: &str| {
        let (h, alert) = (h.clone(), firing("A", instance));
        tokio::spawn(async move { h.engine.submit(vec![alert]).await })
    };
    h.store.hold_saves();
    let in_flight = submit("2");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next_round = submit("3");
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.crash_incident(a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.store.stop_holding();
    for caller in [in_flight, next_round] {
        let err = caller.await.unwrap().unwrap_err();
        assert!(
            matches!(err, EngineError::Retry(_)),
            "callers whose input the actor had are told to resend: {err}"
        );
    }
    // Input after the restart is not: it goes to the restarted incident.
    h.engine.sync().await.unwrap();
    let restarted = h.engine.incident(a).await.unwrap();
    assert_eq!(restarted.seq, 2, "created + the stored note");
    assert_eq!(restarted.timeline.back().unwrap().message, "note: stored");
    // The failed actor had answered with its snapshot for the round it
    // lost (sent with the alert): the commit asks the restarted one instead.
    let stored = stored_incident(&h, a).await;
    assert_eq!(
        (stored.seq, stored.total_alerts),
        (restarted.seq, restarted.total_alerts),
        "the store holds what the restarted incident holds"
    );
    let summary = h
        .engine
        .command(a, Command::Acknowledge, "x")
        .await
        .unwrap();
    assert_eq!(summary.seq, 3, "seq continues without a gap");
    let neighbour = h.engine.incident(b).await.unwrap();
    assert_eq!(neighbour.seq, 2);
}

/// A command's caller waits for the commit of the round the shard applied
/// it in, and is told to resend when its incident fails before that commit
/// ends: an answered command is never missing from what the incident
/// restarts from.
#[tokio::test(start_paused = true)]
async fn a_command_whose_incident_failed_before_its_commit_ended_is_not_acknowledged() {
    let h = Arc::new(start(false).await);
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    let a = incident_of(&h, "A");
    h.store.hold_saves();
    let note = {
        let h = h.clone();
        tokio::spawn(async move {
            let note = Command::AddNote {
                text: "lost".into(),
            };
            h.engine.command(a, note, "x").await
        })
    };
    // Applied, answered and in the commit held in flight, then the failure.
    while h.engine.read_model().get(&a).unwrap().seq < 2 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.crash_incident(a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.store.stop_holding();
    let answer = note.await.unwrap();
    assert!(
        matches!(answer, Err(CommandError::Unavailable(_))),
        "{answer:?}"
    );
    h.engine.sync().await.unwrap();
    let restarted = h.engine.incident(a).await.unwrap();
    assert_eq!(restarted.seq, 1, "restarted from the stored state");
}

#[tokio::test(start_paused = true)]
async fn restore_rearms_escalation_and_fires_each_step_once() {
    for passivation in [true, false] {
        let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
        let store = Arc::new(MemoryStore::default());
        let first = start_with(settings(passivation), store.clone(), clock.clone()).await;
        first
            .engine
            .submit(vec![alert(
                "Down",
                "1",
                AlertStatus::Firing,
                Severity::Critical,
            )])
            .await
            .unwrap();
        settle(&first).await;
        let id = incident_of(&first, "Down");
        first.engine.shutdown().await;
        let fired_before = escalations(&first.sink, id);
        assert_eq!(fired_before, vec![(0, 0)]);

        // Restart 25 minutes later: steps due at +10m and +20m are overdue.
        tokio::time::sleep(25 * MIN).await;
        let second = start_with(settings(passivation), store, clock).await;
        settle(&second).await;
        assert_eq!(
            escalations(&second.sink, id),
            vec![(1, 0), (0, 1)],
            "overdue steps fire at once"
        );
        tokio::time::sleep(10 * MIN).await;
        settle(&second).await;
        tokio::time::sleep(60 * MIN).await;
        settle(&second).await;
        assert_eq!(
            escalations(&second.sink, id),
            vec![(1, 0), (0, 1), (1, 1)],
            "no step fires twice (passivation {passivation})"
        );
        let seqs: Vec<u64> = second.sink.events_of(id).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5], "seq continues from the snapshot");
        second.engine.shutdown().await;
    }
}

fn escalations(sink: &CollectingSink, id: IncidentId) -> Vec<(u32, u32)> {
    sink.events_of(id)
        .iter()
        .filter_map(|e| match &e.change {
            Change::Escalated {
                step, loop_index, ..
            } => Some((*step, *loop_index)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn store_outage_refuses_acknowledgement_then_fills_up() {
    let mut settings = settings(true);
    settings.shards = 1;
    settings.shard_capacity = 4;
    let h = start_fresh(settings).await;
    h.store.set_failing(true);
    let err = h
        .engine
        .submit(vec![firing("A", "1"), firing("B", "1")])
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    let reason = h.engine.loads()[0]
        .store_error()
        .expect("the failing flush is reported");
    assert!(reason.contains("memory store set to fail"), "{reason}");
    let _ = h
        .engine
        .submit(vec![firing("C", "1"), firing("D", "1")])
        .await;
    let err = h.engine.submit(vec![firing("E", "1")]).await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Busy {
                shard: 0,
                pending: 4,
                capacity: 4
            }
        ),
        "{err}"
    );
    h.store.set_failing(false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.engine.submit(vec![firing("E", "1")]).await.unwrap();
    assert_eq!(h.engine.loads()[0].store_error(), None);
    assert_eq!(
        h.store.live_count(),
        5,
        "everything taken in memory during the outage is stored after it"
    );
}

/// With commits back to back (`flush_interval` 0, the default), a failing
/// store is still retried with a growing pause, not in a loop.
#[tokio::test(start_paused = true)]
async fn a_failing_store_is_retried_with_backoff_without_a_flush_interval() {
    let settings = EngineSettings {
        shards: 1,
        flush_interval: Duration::ZERO,
        ..settings(true)
    };
    let h = start_fresh(settings).await;
    h.store.set_failing(true);
    let err = h.engine.submit(vec![firing("A", "1")]).await.unwrap_err();
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    let failed = h.store.save_attempts();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Pauses of 20, 40, 80, 160, 320 ms fit in the second; 640 ms does not.
    assert_eq!(h.store.save_attempts() - failed, 5);
    h.store.set_failing(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.store.live_count(), 1);
}

/// Several batches of alerts and commands reach an incident while a commit
/// is in flight: the next commit stores them all (as change frames of a
/// large incident), and a restore from the store gives the incident as it
/// lives.
#[tokio::test(start_paused = true)]
async fn batches_and_commands_taken_during_a_commit_are_all_stored_by_the_next() {
    for passivation in [false, true] {
        let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
        let store = Arc::new(MemoryStore::default());
        let h = Arc::new(start_with(settings(passivation), store.clone(), clock.clone()).await);
        // Sixty alerts make the incident large enough that its changes are
        // stored as frames.
        let alerts = (1..=60).map(|n| firing("A", &n.to_string())).collect();
        // A frame holds the alerts seen since the last write: time passes
        // between writes so that each holds only its own.
        h.engine.submit(alerts).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        h.engine.submit(vec![firing("A", "1")]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let id = incident_of(&h, "A");
        let submit = |instances: &[&str]| {
            let h = h.clone();
            let alerts: Vec<Alert> = instances.iter().map(|i| firing("A", i)).collect();
            tokio::spawn(async move { h.engine.submit(alerts).await })
        };

        store.hold_saves();
        let mut callers = vec![submit(&["61"])];
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The commit of "61" is in flight; these join the next one.
        callers.push(submit(&["62", "2"]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let note = |text: &str| {
            let (h, text) = (h.clone(), text.to_string());
            tokio::spawn(async move { h.engine.command(id, Command::AddNote { text }, "x").await })
        };
        let mut notes = vec![note("between")];
        tokio::time::sleep(Duration::from_millis(10)).await;
        callers.push(submit(&["63"]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        callers.push(submit(&["64", "3", "63"]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        notes.push(note("last"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        store.stop_holding();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        for note in notes {
            note.await.unwrap().unwrap();
        }
        let live = h.engine.incident(id).await.unwrap();
        assert_eq!(live.alerts.len(), 64);
        assert_eq!(live.total_alerts, 68);
        h.engine.shutdown().await;

        let restored = start_with(settings(passivation), store, clock).await;
        assert_eq!(restored.engine.incident(id).await.unwrap(), live);
    }
}

/// Commits after an incident's first store only its changes; one that the
/// store failed to take must not leave a gap: the retry writes it whole.
#[tokio::test(start_paused = true)]
async fn a_commit_the_store_failed_to_take_is_written_whole_by_the_retry() {
    let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
    let store = Arc::new(MemoryStore::default());
    // Commits 100 ms apart: the failed one snapshots the incident after the
    // alert it lost changed, so the retry's changes would not repeat it.
    let settings = EngineSettings {
        flush_interval: Duration::from_millis(100),
        ..settings(false)
    };
    let h = start_with(settings.clone(), store.clone(), clock.clone()).await;
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    let id = incident_of(&h, "A");
    // Nineteen more alerts make the incident large enough that its changes
    // are stored as frames; they are stored whole 100 ms after they came,
    // so a frame holds only the alerts changed after that.
    let alerts = (2..=20).map(|n| firing("A", &n.to_string())).collect();
    h.engine.submit(alerts).await.unwrap();
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    store.set_failing(true);
    let err = h.engine.submit(vec![firing("A", "1")]).await.unwrap_err();
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    store.set_failing(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.engine.sync().await.unwrap();
    let live = h.engine.incident(id).await.unwrap();
    h.engine.shutdown().await;

    let restored = start_with(settings, store, clock).await;
    let stored = restored.engine.incident(id).await.unwrap();
    assert_eq!(stored.total_alerts, 22);
    let counts: Vec<u64> = stored.alerts.values().map(|a| a.count).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        22,
        "per-alert counts {counts:?}"
    );
    assert_eq!(stored, live);
}

/// Two incidents' lives overlap one commit: the incident is passivated and
/// woken (a new actor, started from a later state than the frame the commit
/// is storing), then that new actor fails while the next commit stores its
/// snapshot. The restarted incident must hold everything it was woken with,
/// and a caller whose change it lost must be told to resend.
#[tokio::test(start_paused = true)]
async fn an_incident_passivated_woken_and_failed_during_commits_keeps_every_acknowledged_change() {
    let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
    let store = Arc::new(MemoryStore::default());
    let h = Arc::new(start_with(settings(true), store.clone(), clock.clone()).await);
    // Twenty alerts make the incident large enough that a note is stored as
    // a frame; the duplicate after them starts its actor.
    let alerts = (1..=20).map(|n| firing("A", &n.to_string())).collect();
    h.engine.submit(alerts).await.unwrap();
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    let id = incident_of(&h, "A");
    let note = |text: &str| {
        let (h, text) = (h.clone(), text.to_string());
        tokio::spawn(async move {
            h.engine
                .command(id, Command::AddNote { text }, "x")
                .await
                .map(|summary| summary.seq)
        })
    };

    // The commit of the first note holds the note's frame in flight.
    store.hold_saves();
    let first = note("one");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = note("two");
    // A sweep (every 20 s) passivates the incident once it has been idle
    // for `idle_after` (60 s), with both notes.
    tokio::time::sleep(Duration::from_secs(85)).await;
    let seq_with_both_notes = h.engine.read_model().get(&id).unwrap().seq;
    // An alert wakes it: a new actor, started from the passivated state.
    let waker = {
        let h = h.clone();
        tokio::spawn(async move { h.engine.submit(vec![firing("A", "1")]).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first commit ends (the old actor's frame is stored); the next one,
    // with the new actor's snapshot, stays in flight while the new actor fails.
    store.let_saves_through(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.crash_incident(id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.stop_holding();

    let restarted = h.engine.incident(id).await.unwrap();
    assert_eq!(
        restarted.seq, seq_with_both_notes,
        "restarted from the state it was woken with, not from it with the first note's frame over it"
    );
    assert_eq!(restarted.timeline.back().unwrap().message, "note: two");
    // It has no trace of the waking alert, stored by the commit in flight
    // when it failed: that commit's callers must be told to resend. A
    // command's caller waits for the commit of the round it was applied in:
    // the first note's commit ended, the second note's was in flight.
    assert_eq!(restarted.total_alerts, 21);
    let resend = waker.await.unwrap();
    assert!(matches!(resend, Err(EngineError::Retry(_))), "{resend:?}");
    let first = first.await.unwrap();
    assert_eq!(first, Ok(seq_with_both_notes - 1));
    let second = second.await.unwrap();
    assert!(
        matches!(second, Err(CommandError::Unavailable(_))),
        "{second:?}"
    );
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    settle(&h).await;
    let live = h.engine.incident(id).await.unwrap();
    assert_eq!(live.total_alerts, 22);
    h.engine.shutdown().await;

    let restored = start_with(settings(true), store, clock).await;
    assert_eq!(restored.engine.incident(id).await.unwrap(), live);
}

#[tokio::test(start_paused = true)]
async fn replayed_offsets_change_nothing() {
    let h = start(true).await;
    let position = SourcePosition {
        source: "alerts/0".into(),
        offset: 41,
    };
    h.engine
        .submit_from(vec![firing("A", "1")], Progress::at(Some(position.clone())))
        .await
        .unwrap();
    h.engine
        .submit_from(vec![firing("A", "1")], Progress::at(Some(position)))
        .await
        .unwrap();
    let id = incident_of(&h, "A");
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 1);
}

/// A stream caller told to resend because an incident failed before its
/// input was stored sends the same position again: that resend is applied,
/// not skipped as a replay, and until it arrives the stored offset stops
/// short of it (a crash meanwhile reads the stream again from there).
#[tokio::test(start_paused = true)]
async fn a_resend_after_an_incident_failed_is_applied_not_skipped_as_a_replay() {
    let h = Arc::new(start(false).await);
    let shard = h.engine.shards_of(&firing("A", "1"))[0];
    let at = |offset| {
        Progress::at(Some(SourcePosition {
            source: "keyed/0".into(),
            offset,
        }))
    };
    h.engine
        .submit_to_shard(shard, vec![firing("A", "1")], at(1))
        .await
        .unwrap();
    let id = incident_of(&h, "A");
    let stored_offset = |h: &Arc<Harness>| {
        let h = h.clone();
        async move { h.store.load_shard(shard).await.unwrap().offsets["keyed/0"] }
    };

    h.store.hold_saves();
    let lost = {
        let h = h.clone();
        tokio::spawn(async move {
            h.engine
                .submit_to_shard(shard, vec![firing("A", "2")], at(2))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.crash_incident(id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.store.stop_holding();
    let err = lost.await.unwrap().unwrap_err();
    assert!(matches!(err, EngineError::Retry(_)), "{err}");
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 1);

    // Later input is applied and stored, the lost position's offset is not.
    h.engine
        .submit_to_shard(shard, vec![firing("A", "3")], at(3))
        .await
        .unwrap();
    assert_eq!(stored_offset(&h).await, 1);

    h.engine
        .submit_to_shard(shard, vec![firing("A", "2")], at(2))
        .await
        .unwrap();
    let incident = h.engine.incident(id).await.unwrap();
    assert_eq!(incident.total_alerts, 3, "the resend was applied");
    assert_eq!(incident.alerts.len(), 3);
    h.engine.sync().await.unwrap();
    assert_eq!(stored_offset(&h).await, 3);

    // Once applied, the position is a replay like any other.
    h.engine
        .submit_to_shard(shard, vec![firing("A", "2")], at(2))
        .await
        .unwrap();
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 3);
}

/// Position `offset` of the keyed stream "keyed/0".
fn keyed_at(offset: i64) -> Progress {
    Progress::at(Some(SourcePosition {
        source: "keyed/0".into(),
        offset,
    }))
}

/// Incident "A" and a neighbour on its shard (whose snapshot gives a commit
/// something to store besides A's), opened at offset 1 and stored. Returns
/// the harness, the shard, A's id and the neighbour's alert name.
async fn incident_and_neighbour_stored() -> (Arc<Harness>, usize, IncidentId, String) {
    let h = Arc::new(start(false).await);
    let shard = h.engine.shards_of(&firing("A", "1"))[0];
    let neighbour = (0..)
        .map(|i| format!("B{i}"))
        .find(|name| h.engine.shards_of(&firing(name, "1"))[0] == shard)
        .unwrap();
    let opening = vec![firing("A", "1"), firing(&neighbour, "1")];
    h.engine
        .submit_to_shard(shard, opening, keyed_at(1))
        .await
        .unwrap();
    let id = incident_of(&h, "A");
    tokio::time::sleep(Duration::from_secs(1)).await;
    (h, shard, id, neighbour)
}

/// Crashes incident A (`id`), then sends a batch for A and the neighbour at
/// offset 2: the crash reaches A ahead of the batch and of the snapshot
/// request of the commit the batch starts at once. Returns the batch's error.
async fn crash_a_then_send_its_batch(
    h: &Harness,
    shard: usize,
    id: IncidentId,
    neighbour: &str,
) -> EngineError {
    h.engine.crash_incident(id);
    let batch = vec![firing("A", "2"), firing(neighbour, "2")];
    h.engine
        .submit_to_shard(shard, batch, keyed_at(2))
        .await
        .unwrap_err()
}

/// The incident fails with its batch and the commit's snapshot request still
/// in its mailbox: the commit stores the other incidents but not the offset
/// past the lost input, so a crash before the resend reads it again.
#[tokio::test(start_paused = true)]
async fn a_commit_missing_a_failed_incidents_snapshot_does_not_store_its_offset() {
    let (h, shard, id, neighbour) = incident_and_neighbour_stored().await;

    // The commit of the lost batch is stored; the next one (with the
    // restarted incident) is held, as if the process died before it.
    h.store.hold_saves();
    h.store.let_saves_through(1);
    let err = crash_a_then_send_its_batch(&h, shard, id, &neighbour).await;
    assert!(matches!(err, EngineError::Retry(_)), "{err}");
    let stored = h.store.load_shard(shard).await.unwrap();
    let neighbour = incident_of(&h, &neighbour);
    assert_eq!(h.engine.incident(neighbour).await.unwrap().total_alerts, 2);
    assert_eq!(
        stored.offsets["keyed/0"], 1,
        "the lost offset is not stored"
    );
    h.store.stop_holding();

    h.engine
        .submit_to_shard(shard, vec![firing("A", "2")], keyed_at(2))
        .await
        .unwrap();
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 2);
    let stored = h.store.load_shard(shard).await.unwrap();
    assert_eq!(stored.offsets["keyed/0"], 2);
}

/// An incident fails while the store is down: the commit fails and its
/// callers are told so; their resend must still be applied to the restarted
/// incident, not skipped as a replay of input the shard holds.
#[tokio::test(start_paused = true)]
async fn a_resend_after_a_failed_commit_that_also_lost_an_incident_is_applied() {
    let (h, shard, id, neighbour) = incident_and_neighbour_stored().await;

    // The neighbour's snapshot makes the failing store refuse the commit.
    h.store.set_failing(true);
    let err = crash_a_then_send_its_batch(&h, shard, id, &neighbour).await;
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    h.store.set_failing(false);

    h.engine
        .submit_to_shard(shard, vec![firing("A", "2")], keyed_at(2))
        .await
        .unwrap();
    let incident = h.engine.incident(id).await.unwrap();
    assert_eq!(incident.total_alerts, 2, "the resend was applied");
    assert_eq!(incident.alerts.len(), 2);
    let stored = h.store.load_shard(shard).await.unwrap();
    assert_eq!(stored.offsets["keyed/0"], 2);
}

/// A consumer hands over its next batch while the last one awaits its group
/// commit: dispatching returns before anything is stored, the alerts'
/// events are out at once, and each wait resolves once its batch is stored.
#[tokio::test(start_paused = true)]
async fn dispatched_batches_apply_at_once_and_are_stored_with_the_next_commit() {
    let h = start(true).await;
    let shard = h.engine.shards_of(&firing("A", "1"))[0];
    let at = |offset| {
        Progress::at(Some(SourcePosition {
            source: "keyed/0".into(),
            offset,
        }))
    };
    let mut waits = Vec::new();
    for offset in 1..=3 {
        let alerts = vec![firing("A", &offset.to_string())];
        let dispatched = h.engine.dispatch_to_shard(shard, alerts, at(offset));
        waits.push(dispatched.unwrap());
    }
    assert_eq!(h.store.live_count(), 0, "nothing is stored yet");
    for wait in waits {
        wait.stored().await.unwrap();
    }
    assert_eq!(h.store.live_count(), 1);
    let id = incident_of(&h, "A");
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 3);
    // A replay of a dispatched offset changes nothing.
    h.engine
        .submit_to_shard(shard, vec![firing("A", "2")], at(2))
        .await
        .unwrap();
    assert_eq!(h.engine.incident(id).await.unwrap().total_alerts, 3);
}

/// Hands every shard `messages` (offset, alerts) of one stream partition as
/// one batch, as a cluster's shard consumers do.
async fn apply_records(h: &Harness, messages: &[(i64, Vec<Alert>)]) {
    let mut alerts = Vec::new();
    let mut records = Vec::new();
    for (offset, batch) in messages {
        records.push(AlertRecord::new(
            alerts.len(),
            "keyed/0",
            &[*offset as u64],
            Some(Timestamp(1_700_000_000_000 + offset)),
        ));
        alerts.extend(batch.iter().cloned());
    }
    let progress = Progress {
        position: Some(SourcePosition {
            source: "keyed/0".into(),
            offset: messages.last().unwrap().0,
        }),
        origins: Vec::new(),
        records,
    };
    for shard in 0..h.engine.shard_count() {
        h.engine
            .submit_to_shard(shard, alerts.clone(), progress.clone())
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_incident_opened_from_a_stream_record_gets_its_id_again_when_the_record_is_replayed() {
    let resolved = |name| alert(name, "1", AlertStatus::Resolved, Severity::Warning);
    let messages = [
        (7, vec![firing("A", "1"), firing("B", "1"), resolved("C")]),
        (8, vec![firing("A", "2"), firing("C", "1")]),
    ];
    // A's incident is resolved; past its reopen window (15m) A fires again
    // and the incident hands the alert back to open a new one.
    async fn refire_a(h: &Harness) -> IncidentId {
        let first = incident_of(h, "A");
        h.engine
            .command(first, Command::Resolve, "alice")
            .await
            .unwrap();
        tokio::time::sleep(20 * MIN).await;
        apply_records(h, &[(9, vec![firing("A", "3")])]).await;
        settle(h).await;
        let next = incident_of(h, "A");
        assert_ne!(next, first);
        next
    }
    let ids = |h: &Harness| ["A", "B", "C"].map(|name| incident_of(h, name));

    // One replica opens the incidents, then dies before storing them.
    let first = start(false).await;
    apply_records(&first, &messages).await;
    let opened = ids(&first);
    assert_eq!(opened[0].0.timestamp_ms(), 1_700_000_000_007);
    assert_eq!(
        opened[2].0.timestamp_ms(),
        1_700_000_000_008,
        "C opens at its first firing alert"
    );
    assert_ne!(
        opened[0], opened[1],
        "groups of one record get their own ids"
    );
    let reopened = refire_a(&first).await;
    assert_eq!(reopened.0.timestamp_ms(), 1_700_000_000_009);

    // Another replays the same records from an empty store, in other batches.
    let second = start(true).await;
    apply_records(&second, &messages[..1]).await;
    apply_records(&second, &messages[1..]).await;
    assert_eq!(ids(&second), opened);
    assert_eq!(refire_a(&second).await, reopened);
}

/// Records without a position (a standalone replica's Pulsar source, whose
/// acknowledgements stand in for offsets) derive ids too: a redelivery after
/// a crash opens the message's incidents under the same ids.
#[tokio::test(start_paused = true)]
async fn records_without_a_position_derive_ids_on_a_standalone_engine() {
    let record = |first_alert, entry| {
        AlertRecord::new(
            first_alert,
            "alerts",
            &[3, entry],
            Some(Timestamp(1_700_000_000_000)),
        )
    };
    async fn submit(h: &Harness, alerts: Vec<Alert>, records: Vec<AlertRecord>) {
        let progress = Progress {
            records,
            ..Progress::default()
        };
        h.engine.submit_from(alerts, progress).await.unwrap();
    }
    let first = start(true).await;
    submit(
        &first,
        vec![firing("A", "1"), firing("B", "1")],
        vec![record(0, 10), record(1, 11)],
    )
    .await;
    let second = start(true).await;
    submit(&second, vec![firing("B", "1")], vec![record(0, 11)]).await;
    submit(&second, vec![firing("A", "1")], vec![record(0, 10)]).await;
    for name in ["A", "B"] {
        assert_eq!(incident_of(&first, name), incident_of(&second, name));
    }
    assert_ne!(incident_of(&first, "A"), incident_of(&first, "B"));

    // Without records (HTTP), ids stay random.
    let third = start(true).await;
    third.engine.submit(vec![firing("A", "1")]).await.unwrap();
    assert_ne!(incident_of(&third, "A"), incident_of(&first, "A"));
}

#[tokio::test(start_paused = true)]
async fn quiet_resolved_incidents_are_archived_out_of_the_live_set() {
    let h = start(true).await;
    h.engine
        .submit(vec![firing("A", "1"), firing("B", "1")])
        .await
        .unwrap();
    let a = incident_of(&h, "A");
    h.engine
        .command(a, Command::Resolve, "alice")
        .await
        .unwrap();
    tokio::time::sleep(121 * MIN).await;
    settle(&h).await;
    assert!(h.engine.read_model().get(&a).is_none());
    assert_eq!(h.store.live_count(), 1);
    assert_eq!(h.store.archived_count(), 1);
    assert_eq!(
        h.sink.events_of(a).last().unwrap().kind,
        EventKind::Archived
    );
    // The group's next alert opens a fresh incident.
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    assert_ne!(incident_of(&h, "A"), a);
}

#[tokio::test(start_paused = true)]
async fn corrupt_snapshot_is_skipped_and_reported() {
    let store = Arc::new(MemoryStore::default());
    store.put_raw(0, IncidentId::new(Timestamp(5)), vec![1, 2, 3]);
    let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
    let rules: RulesFile = toml::from_str(RULES).unwrap();
    let (tree, policies) = compile_rules(&rules.routing, rules.escalation_policies).unwrap();
    let ports = Ports {
        store: store.clone(),
        sink: Arc::new(CollectingSink::default()),
        clock,
    };
    let (_engine, report) = Engine::start(settings(true), tree, policies, ports)
        .await
        .unwrap();
    assert_eq!(report.incidents, 0);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].shard, 0);
    assert_eq!(store.live_count(), 0, "moved aside");
    assert_eq!(store.quarantined_count(), 1);
    assert!(
        report.rejected[0].reason.contains("corrupt"),
        "{:?}",
        report.rejected[0]
    );
}

/// Group commit: a quiet shard stores a submit at once; its next commit
/// begins `flush_interval` after the last one began.
#[tokio::test(start_paused = true)]
async fn a_quiet_shard_commits_at_once_and_the_next_commit_waits_for_the_interval() {
    let interval = Duration::from_millis(200);
    let settings = EngineSettings {
        shards: 1,
        flush_interval: interval,
        ..settings(false)
    };
    let h = start_fresh(settings).await;

    let started = tokio::time::Instant::now();
    h.engine.submit(vec![firing("A", "1")]).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    h.engine.submit(vec![firing("B", "1")]).await.unwrap();
    assert_eq!(started.elapsed(), interval);

    // Quiet for an interval: the next submit is stored at once again.
    tokio::time::sleep(interval).await;
    let quiet = tokio::time::Instant::now();
    h.engine.submit(vec![firing("C", "1")]).await.unwrap();
    assert_eq!(quiet.elapsed(), Duration::ZERO);
    assert_eq!(h.store.live_count(), 3);
}

/// One shard whose cap on running actors is `max_resident`.
fn crowded_settings(max_resident: usize) -> EngineSettings {
    let mut settings = settings(true);
    settings.shards = 1;
    settings.passivation.max_resident = max_resident;
    settings
}

fn note(text: &str) -> Command {
    Command::AddNote { text: text.into() }
}

/// Commands wake more incidents than the cap within `idle_after`: the
/// least recently used are passivated early, and none of what they took
/// is lost.
#[tokio::test(start_paused = true)]
async fn past_max_resident_the_least_recently_used_incidents_are_passivated() {
    let clock = Arc::new(TokioClock::starting_at(Timestamp(1_800_000_000_000)));
    let store = Arc::new(MemoryStore::default());
    let h = start_with(crowded_settings(10), store.clone(), clock.clone()).await;
    let names: Vec<String> = (0..30).map(|n| format!("A{n}")).collect();
    // New incidents start passivated; a note wakes each, a second apart.
    for name in &names {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    for name in &names {
        h.engine
            .command(incident_of(&h, name), note(name), "x")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    settle(&h).await;

    let mut resident = h.engine.resident_incidents().await;
    assert!(
        !resident.is_empty() && resident.len() <= 10,
        "{} running",
        resident.len()
    );
    resident.sort();
    let mut last_woken: Vec<IncidentId> = names[names.len() - resident.len()..]
        .iter()
        .map(|name| incident_of(&h, name))
        .collect();
    last_woken.sort();
    assert_eq!(
        resident, last_woken,
        "the last woken run, the others were passivated"
    );
    h.engine.shutdown().await;
    let restored = start_with(crowded_settings(10), store, clock).await;
    for name in &names {
        let incident = restored.engine.incident(incident_of(&restored, name)).await;
        let notes: Vec<String> = incident
            .unwrap()
            .timeline
            .iter()
            .filter(|entry| entry.kind == EventKind::NoteAdded)
            .map(|entry| entry.message.clone())
            .collect();
        assert_eq!(notes, [format!("note: {name}")], "{name}");
    }
}

/// Once `max_resident` actors run, alerts for a passivated incident are
/// applied by the shard, which keeps the incident passivated: their events
/// go out in order, the read model and the store see their effect, and no
/// actor starts for them.
#[tokio::test(start_paused = true)]
async fn at_max_resident_alerts_reach_passivated_incidents_without_waking_them() {
    // The paused clock runs every task on this thread, which sees this recorder.
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let h = start_fresh(crowded_settings(2)).await;
    let names = ["A0", "A1", "A2", "A3"];
    for name in names {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    // Duplicates wake the first two: the cap is reached.
    for name in &names[..2] {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    let mut woken: Vec<IncidentId> = names[..2].iter().map(|n| incident_of(&h, n)).collect();
    woken.sort();
    let resident = || async {
        let mut resident = h.engine.resident_incidents().await;
        resident.sort();
        resident
    };
    assert_eq!(resident().await, woken);

    let (a2, a3) = (incident_of(&h, "A2"), incident_of(&h, "A3"));
    h.engine
        .submit(vec![
            firing("A2", "1"),
            firing("A2", "2"),
            firing("A3", "1"),
        ])
        .await
        .unwrap();
    assert_eq!(resident().await, woken, "no actor started for them");
    let kinds: Vec<(u64, EventKind)> = h
        .sink
        .events()
        .iter()
        .filter(|event| event.incident_id == a2)
        .map(|event| (event.seq, event.kind))
        .collect();
    assert_eq!(
        kinds,
        [(1, EventKind::Created), (2, EventKind::AlertAdded)],
        "the new alert's event follows the incident's last"
    );
    let summary = |id| h.engine.read_model().get(&id).unwrap();
    assert_eq!((summary(a2).total_alerts, summary(a2).alert_count), (3, 2));
    assert_eq!(
        summary(a3).total_alerts,
        2,
        "a duplicate raises no event but shows in the read model"
    );
    let stored = stored_incident(&h, a2).await;
    assert_eq!((stored.total_alerts, stored.alerts.len()), (3, 2));
    assert_eq!(stored_incident(&h, a3).await.duplicate_alerts, 1);
    assert_eq!(
        counter(&metrics, "incidentd_incidents_updated_while_passive_total"),
        Some(2),
        "one per incident"
    );
}

/// A passivated incident the shard updates at `max_resident` is stored as
/// its actor would store it: whole at first, then what changed, appended
/// (a counts frame for a duplicate); whole again after a commit the store
/// failed to take.
#[tokio::test(start_paused = true)]
async fn at_max_resident_a_passivated_incident_stores_only_what_changed() {
    let h = start_fresh(crowded_settings(2)).await;
    for name in ["A0", "A1", "A2"] {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    // Duplicates wake the first two: the cap is reached.
    for name in ["A0", "A1"] {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    let a2 = incident_of(&h, "A2");
    let whole_now = || async { encode_incident(&h.engine.incident(a2).await.unwrap()) };
    let appended = |before: &[u8], after: &[u8]| {
        assert!(after.starts_with(before), "the stored bytes were replaced");
        after.len() - before.len()
    };

    h.engine.submit(vec![firing("A2", "1")]).await.unwrap();
    let whole = stored_bytes(&h, a2).await;
    assert_eq!(whole, whole_now().await, "its first update is stored whole");
    h.engine.submit(vec![firing("A2", "1")]).await.unwrap();
    let with_counts = stored_bytes(&h, a2).await;
    let counts = appended(&whole, &with_counts);
    assert!(
        counts > 0 && counts * 4 <= whole.len(),
        "a duplicate appends a small frame: {counts} bytes to {} whole",
        whole.len()
    );
    // A new alert: a change frame, or whole again for an incident this
    // small (`SnapshotWriter`).
    h.engine.submit(vec![firing("A2", "2")]).await.unwrap();
    let stored = stored_incident(&h, a2).await;
    assert_eq!(
        (
            stored.total_alerts,
            stored.duplicate_alerts,
            stored.alerts.len()
        ),
        (4, 2, 2)
    );
    assert_eq!(encode_incident(&stored), whole_now().await);

    h.store.set_failing(true);
    let err = h.engine.submit(vec![firing("A2", "1")]).await.unwrap_err();
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    h.store.set_failing(false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rewritten = stored_bytes(&h, a2).await;
    assert_eq!(
        rewritten,
        whole_now().await,
        "after a failed commit the incident is stored whole"
    );
    assert_eq!(stored_incident(&h, a2).await.duplicate_alerts, 3);
    h.engine.submit(vec![firing("A2", "1")]).await.unwrap();
    let counts_again = appended(&rewritten, &stored_bytes(&h, a2).await);
    assert!(counts_again > 0 && counts_again * 4 <= rewritten.len());
    assert_eq!(stored_incident(&h, a2).await.duplicate_alerts, 4);
    assert_eq!(
        h.engine.resident_incidents().await.len(),
        2,
        "no actor started for A2"
    );
}

/// A passivated incident updated at the cap while a commit holding its
/// last write is in flight: when that commit fails, the newer write (the
/// changes since the lost one) is not stored either; the retry stores the
/// incident whole.
#[tokio::test(start_paused = true)]
async fn at_max_resident_a_write_on_top_of_a_failed_commit_is_stored_whole() {
    let h = Arc::new(start_fresh(crowded_settings(2)).await);
    // Large enough that its changes are stored as frames.
    let opening = (1..=60).map(|n| firing("A2", &n.to_string())).collect();
    h.engine.submit(opening).await.unwrap();
    for name in ["A0", "A1"] {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    let a2 = incident_of(&h, "A2");
    h.engine.submit(vec![firing("A2", "1")]).await.unwrap();
    let submit = |instance: &str| {
        let (h, alert) = (h.clone(), firing("A2", instance));
        tokio::spawn(async move { h.engine.submit(vec![alert]).await })
    };
    let ms = |n| tokio::time::sleep(Duration::from_millis(n));

    h.store.hold_saves();
    ms(10).await;
    let stored = submit("2");
    ms(10).await;
    // While that commit is in flight, two duplicates 10 ms apart: one
    // write for the next commit, holding both.
    let first = submit("3");
    ms(10).await;
    let lost = [first, submit("4")];
    ms(10).await;
    h.store.let_saves_through(1);
    stored.await.unwrap().unwrap();
    // The next commit holds that write; meanwhile another duplicate is
    // written as the changes since it, which leaves out the one of "3".
    ms(10).await;
    let after = submit("5");
    ms(10).await;
    h.store.set_failing(true);
    h.store.let_saves_through(1);
    for caller in lost {
        assert!(matches!(
            caller.await.unwrap(),
            Err(EngineError::NotDurable(_))
        ));
    }
    h.store.set_failing(false);
    h.store.stop_holding();
    tokio::time::sleep(Duration::from_secs(10)).await;
    after.await.unwrap().unwrap();

    let current = h.engine.incident(a2).await.unwrap();
    assert_eq!(current.alerts[&firing("A2", "3").fingerprint].count, 2);
    assert_eq!(
        stored_incident(&h, a2).await,
        current,
        "the store holds the lost write's changes and the newer one's"
    );
}

/// Once `max_resident` actors run, a passivated incident's due timers are
/// fired by the shard too, which keeps the incident passivated: its
/// escalation steps go out, and when its retention runs out it is
/// archived, all without an actor.
#[tokio::test(start_paused = true)]
async fn at_max_resident_due_timers_reach_passivated_incidents_without_waking_them() {
    let h = start_fresh(crowded_settings(2)).await;
    let critical = alert("D", "1", AlertStatus::Firing, Severity::Critical);
    for alert in [
        firing("A0", "1"),
        firing("A1", "1"),
        firing("C", "1"),
        critical,
    ] {
        h.engine.submit(vec![alert]).await.unwrap();
    }
    let (c, d) = (incident_of(&h, "C"), incident_of(&h, "D"));
    // C is resolved (a command wakes it), then passivated when idle.
    h.engine
        .command(c, Command::Resolve, "alice")
        .await
        .unwrap();
    tokio::time::sleep(2 * MIN).await;
    assert!(h.engine.resident_incidents().await.is_empty());
    // Duplicates wake A0 and A1 and keep them busy: the cap is reached
    // until C's retention (120 minutes) runs out.
    for _ in 0..2 * 121 {
        h.engine
            .submit(vec![firing("A0", "1"), firing("A1", "1")])
            .await
            .unwrap();
        tokio::time::sleep(MIN / 2).await;
        let mut resident = h.engine.resident_incidents().await;
        resident.sort();
        let mut busy = vec![incident_of(&h, "A0"), incident_of(&h, "A1")];
        busy.sort();
        assert_eq!(resident, busy, "no actor started for C or D");
    }
    settle(&h).await;

    assert!(
        escalations(&h.sink, d).len() >= 2,
        "D escalated: {:?}",
        escalations(&h.sink, d)
    );
    let stored = stored_incident(&h, d).await;
    assert_eq!(
        stored.escalation,
        h.engine.incident(d).await.unwrap().escalation,
        "the store holds D's escalation as fired"
    );
    assert_eq!(
        h.sink.events_of(c).last().unwrap().kind,
        EventKind::Archived
    );
    assert!(h.engine.read_model().get(&c).is_none());
    assert_eq!(h.store.archived_count(), 1);
    assert_eq!(h.store.live_count(), 3);
}

/// While the store fails, incidents woken past `max_resident` (by commands
/// here) cannot be passivated, so the shard stays over the cap; alerts
/// still wake no more. The commit that ends the outage stores what the
/// shard applied meanwhile and sweeps back under the cap at once.
#[tokio::test(start_paused = true)]
async fn past_max_resident_with_the_store_failing_alerts_wake_no_more_actors() {
    let h = start_fresh(crowded_settings(2)).await;
    let names = ["A0", "A1", "A2", "A3"];
    for name in names {
        h.engine.submit(vec![firing(name, "1")]).await.unwrap();
    }
    h.store.set_failing(true);
    for name in &names[..3] {
        let err = h
            .engine
            .command(incident_of(&h, name), note(name), "x")
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Unavailable(_)), "{name}: {err}");
    }
    assert_eq!(h.engine.resident_incidents().await.len(), 3);
    let err = h.engine.submit(vec![firing("A3", "1")]).await.unwrap_err();
    assert!(matches!(err, EngineError::NotDurable(_)), "{err}");
    assert_eq!(
        h.engine.resident_incidents().await.len(),
        3,
        "the alert woke nothing"
    );

    h.store.set_failing(false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The commit that stored their input let a sweep stop them: no new
    // alert or periodic sweep (20 s) was needed to get back under the cap.
    let resident = h.engine.resident_incidents().await.len();
    assert!(
        resident <= 2,
        "{resident} running after the store came back"
    );
    assert_eq!(
        stored_incident(&h, incident_of(&h, "A3"))
            .await
            .total_alerts,
        2
    );
}

/// An incident with a deadline within `timer_horizon` keeps its actor
/// whatever the cap: passivating it would only wake it again for the timer.
#[tokio::test(start_paused = true)]
async fn an_incident_with_a_deadline_soon_keeps_running_past_max_resident() {
    let mut settings = crowded_settings(2);
    // The pager policy's first step is due 10 minutes after opening.
    settings.passivation.timer_horizon = 20 * MIN;
    let h = start_fresh(settings).await;
    let critical = |name: &str| alert(name, "1", AlertStatus::Firing, Severity::Critical);
    let names = ["C0", "C1", "C2", "C3", "C4"];
    // A note wakes each, past the cap too.
    for name in names {
        h.engine.submit(vec![critical(name)]).await.unwrap();
        h.engine
            .command(incident_of(&h, name), note(name), "x")
            .await
            .unwrap();
    }
    settle(&h).await;

    let mut resident = h.engine.resident_incidents().await;
    resident.sort();
    let mut expected: Vec<IncidentId> = names.iter().map(|name| incident_of(&h, name)).collect();
    expected.sort();
    assert_eq!(resident, expected);
}
