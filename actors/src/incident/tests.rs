//! The incident state machine, driven directly with explicit times.

use std::sync::Arc;
use std::time::Duration;

use crate::escalation::{EscalationPolicies, EscalationPolicy, EscalationStep};
use crate::model::{
    Alert, AlertStatus, Change, Command, CommandError, CompactString, EventKind, Incident,
    IncidentEvent, IncidentId, IncidentStatus, Severity, Timestamp,
};
use crate::routing::{RouteSettings, SeverityPolicies};

use super::{
    decode_incident, encode_changes, encode_counts, encode_incident, CodecError, IncidentRules,
    SnapshotWriter,
};
use crate::ports::SnapshotWrite;

const T0: Timestamp = Timestamp(1_800_000_000_000);
const MIN: Duration = Duration::from_secs(60);
const SEC: Duration = Duration::from_secs(1);

fn at(offset: Duration) -> Timestamp {
    T0.plus(offset)
}

fn rules() -> IncidentRules {
    let policy = EscalationPolicy {
        id: "pager".into(),
        repeat: 2,
        steps: vec![
            EscalationStep {
                escalate_after: 10 * MIN,
                targets: vec!["user:alice".into()],
                channels: vec!["webhook".into()],
            },
            EscalationStep {
                escalate_after: 10 * MIN,
                targets: vec!["team:db".into()],
                channels: vec!["log".into()],
            },
        ],
    };
    let policies = EscalationPolicies::new(vec![policy]).unwrap();
    let mut rules = IncidentRules::new(policies, &crate::EngineSettings::default());
    rules.max_alerts_per_incident = 3;
    rules.max_timeline_entries = 5;
    rules.retention = 60 * MIN;
    rules
}

fn route() -> Arc<RouteSettings> {
    Arc::new(RouteSettings {
        route_id: "db".into(),
        tenant: None,
        service: Some("postgres".into()),
        team: Some("db".into()),
        policies: SeverityPolicies {
            critical: Some("pager".into()),
            ..SeverityPolicies::default()
        },
        dedup_window: 5 * MIN,
        ack_timeout: 30 * MIN,
        auto_resolve: true,
        auto_resolve_grace: 2 * MIN,
        reopen_window: 15 * MIN,
    })
}

fn alert(name: &str, status: AlertStatus, severity: Severity) -> Alert {
    crate::test_support::alert_with(&[("alertname", name), ("cluster", "eu1")], status, severity)
}

fn firing(name: &str) -> Alert {
    alert(name, AlertStatus::Firing, Severity::Warning)
}

fn resolved(name: &str) -> Alert {
    alert(name, AlertStatus::Resolved, Severity::Warning)
}

/// An incident plus every event it emitted, checked for seq continuity.
struct Probe {
    incident: Incident,
    events: Vec<IncidentEvent>,
    rules: IncidentRules,
}

impl Probe {
    fn open(first: Alert) -> Probe {
        Probe::open_with(first, rules(), route())
    }

    fn open_with(first: Alert, rules: IncidentRules, route: Arc<RouteSettings>) -> Probe {
        let mut events = Vec::new();
        let incident = Incident::open(
            IncidentId::new(T0),
            ("acme", "db:{}"),
            &route,
            &first,
            T0,
            &rules,
            &mut events,
        );
        Probe {
            incident,
            events,
            rules,
        }
    }

    fn alerts(&mut self, alerts: Vec<Alert>, now: Timestamp) -> Vec<Alert> {
        self.incident
            .apply_alerts(alerts, now, &self.rules, &mut self.events)
    }

    fn command(&mut self, command: Command, now: Timestamp) -> Result<(), CommandError> {
        self.incident
            .apply_command(command, "bob", now, &self.rules, &mut self.events)
    }

    fn tick(&mut self, now: Timestamp) {
        self.incident.fire_due(now, &self.rules, &mut self.events);
    }

    fn kinds(&self) -> Vec<EventKind> {
        self.events.iter().map(|e| e.kind).collect()
    }

    fn escalations(&self) -> Vec<(u32, u32, Timestamp)> {
        self.events
            .iter()
            .filter_map(|e| match &e.change {
                Change::Escalated {
                    step, loop_index, ..
                } => Some((*step, *loop_index, e.time)),
                _ => None,
            })
            .collect()
    }

    fn idempotency_keys(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.change {
                Change::Escalated {
                    idempotency_key, ..
                } => Some(idempotency_key.clone()),
                _ => None,
            })
            .collect()
    }

    fn assert_seq_gap_free(&self) {
        for (i, event) in self.events.iter().enumerate() {
            assert_eq!(
                event.seq,
                i as u64 + 1,
                "event {i} ({:?}) has seq {}",
                event.kind,
                event.seq
            );
            assert_eq!(event.id, format!("{}-{}", self.incident.id, event.seq));
            assert_eq!(event.incident.seq, event.seq);
        }
        assert_eq!(self.incident.seq, self.events.len() as u64);
    }
}

#[test]
fn open_records_first_alert_and_route_decisions() {
    let p = Probe::open(firing("DiskFull"));
    assert_eq!(p.kinds(), vec![EventKind::Created]);
    let i = &p.incident;
    assert_eq!(i.status, IncidentStatus::Triggered);
    assert_eq!(&*i.title, "DiskFull");
    assert_eq!(i.service.as_deref(), Some("postgres"));
    assert_eq!(i.alerts.len(), 1);
    assert_eq!(i.total_alerts, 1);
    // Warning severity has no policy in this route: no escalation armed.
    assert_eq!(i.escalation.next_at, None);
    p.assert_seq_gap_free();
}

#[test]
fn duplicate_inside_window_only_counts_and_outside_window_refires() {
    let mut p = Probe::open(firing("DiskFull"));
    p.alerts(vec![firing("DiskFull"), firing("DiskFull")], at(MIN));
    assert_eq!(p.kinds(), vec![EventKind::Created]);
    let state = &p.incident.alerts[&firing("DiskFull").fingerprint];
    assert_eq!((state.count, state.last_seen), (3, at(MIN)));
    assert_eq!(p.incident.duplicate_alerts, 2);
    p.alerts(vec![firing("DiskFull")], at(6 * MIN));
    assert_eq!(p.kinds(), vec![EventKind::Created, EventKind::AlertAdded]);
    assert!(matches!(
        p.events[1].change,
        Change::AlertAdded { refire: true, .. }
    ));
    p.assert_seq_gap_free();
}

#[test]
fn every_event_s_summary_counts_the_alerts_firing_then() {
    let mut p = Probe::open(firing("a"));
    p.alerts(vec![firing("b"), firing("c")], at(SEC));
    // b again is a duplicate inside the dedup window: no event.
    p.alerts(vec![resolved("a"), firing("b")], at(2 * SEC));
    p.alerts(vec![firing("a")], at(3 * SEC));
    let counts: Vec<(EventKind, u64)> = p
        .events
        .iter()
        .map(|e| (e.kind, e.incident.firing_alerts))
        .collect();
    assert_eq!(
        counts,
        vec![
            (EventKind::Created, 1),
            (EventKind::AlertAdded, 2),
            (EventKind::AlertAdded, 3),
            (EventKind::AlertResolved, 2),
            (EventKind::AlertAdded, 3),
        ]
    );
    p.alerts(vec![resolved("c")], at(4 * SEC));
    let restored = decode_incident("t", &encode_incident(&p.incident)).unwrap();
    assert_eq!(
        restored.summary().firing_alerts,
        2,
        "counted again on decode"
    );
}

#[test]
fn new_fingerprint_joins_and_narrows_common_labels() {
    let mut p = Probe::open(firing("DiskFull"));
    let before = p.incident.summary();
    p.alerts(vec![firing("DiskSlow")], at(MIN));
    assert_eq!(p.kinds(), vec![EventKind::Created, EventKind::AlertAdded]);
    assert_eq!(p.incident.alerts.len(), 2);
    let common: Vec<&str> = p
        .incident
        .labels
        .keys()
        .map(CompactString::as_str)
        .collect();
    assert_eq!(common, vec!["cluster"]);
    // A summary shares the labels; narrowing them leaves it as it was.
    assert_eq!(before.labels.len(), 2, "{:?}", before.labels);
    // A new alert with every shared label changes none, and copies none.
    let labels = p.incident.labels.clone();
    p.alerts(vec![firing("DiskHot")], at(2 * MIN));
    assert_eq!(p.incident.alerts.len(), 3);
    assert!(Arc::ptr_eq(&labels, &p.incident.labels));
}

#[test]
fn alert_states_are_capped_and_drops_counted() {
    let mut p = Probe::open(firing("a"));
    p.alerts(
        vec![firing("b"), firing("c"), firing("d"), firing("e")],
        at(MIN),
    );
    assert_eq!(p.incident.alerts.len(), 3);
    assert_eq!(p.incident.dropped_alerts, 2);
    assert_eq!(p.incident.total_alerts, 5);
}

#[test]
fn timeline_is_capped_but_counts_everything() {
    let mut p = Probe::open(firing("a"));
    for i in 0..10 {
        p.command(
            Command::AddNote {
                text: format!("note {i}"),
            },
            at(MIN),
        )
        .unwrap();
    }
    assert_eq!(p.incident.timeline.len(), 5);
    assert_eq!(p.incident.timeline_total, 11);
    assert_eq!(p.incident.timeline.front().unwrap().seq, 7);
    p.assert_seq_gap_free();
}

#[test]
fn higher_severity_alert_raises_incident_severity() {
    let mut p = Probe::open(firing("a"));
    p.alerts(
        vec![alert("b", AlertStatus::Firing, Severity::Critical)],
        at(MIN),
    );
    assert_eq!(p.incident.severity, Severity::Critical);
    assert_eq!(
        p.kinds(),
        vec![
            EventKind::Created,
            EventKind::AlertAdded,
            EventKind::SeverityChanged
        ]
    );
}

#[test]
fn lifecycle_ack_unack_resolve_reopen() {
    let mut p = Probe::open(firing("a"));
    p.command(Command::Acknowledge, at(MIN)).unwrap();
    assert_eq!(p.incident.status, IncidentStatus::Acknowledged);
    assert_eq!(p.incident.acknowledged_by.as_deref(), Some("bob"));
    p.command(Command::Unacknowledge, at(2 * MIN)).unwrap();
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    p.command(Command::Resolve, at(3 * MIN)).unwrap();
    assert_eq!(p.incident.status, IncidentStatus::Resolved);
    assert_eq!(p.incident.resolved_at, Some(at(3 * MIN)));
    p.command(Command::Reopen, at(4 * MIN)).unwrap();
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    assert_eq!(p.incident.reopen_count, 1);
    assert_eq!(
        p.kinds(),
        vec![
            EventKind::Created,
            EventKind::Acknowledged,
            EventKind::Unacknowledged,
            EventKind::Resolved,
            EventKind::Reopened
        ]
    );
    p.assert_seq_gap_free();
}

#[test]
fn illegal_commands_change_nothing_and_emit_nothing() {
    let mut p = Probe::open(firing("a"));
    p.command(Command::Resolve, at(MIN)).unwrap();
    let before = p.incident.clone();
    let events = p.events.len();
    let refused = [
        Command::Resolve,
        Command::Acknowledge,
        Command::Unacknowledge,
        Command::EscalateNow,
        Command::Snooze {
            until: at(60 * MIN),
        },
        Command::ChangeSeverity {
            severity: Severity::Warning,
        },
    ];
    for command in refused {
        let name = command.name();
        let err = p.command(command, at(2 * MIN)).unwrap_err();
        assert!(
            matches!(err, CommandError::NotApplicable { .. }),
            "{name}: {err}"
        );
    }
    assert!(matches!(
        p.command(Command::AddNote { text: "  ".into() }, at(2 * MIN)),
        Err(CommandError::Invalid { field: "text", .. })
    ));
    assert_eq!(p.incident, before);
    assert_eq!(p.events.len(), events);
    let message = p
        .command(Command::Resolve, at(2 * MIN))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("resolve") && message.contains("already resolved"),
        "{message}"
    );
}

#[test]
fn resolved_alerts_auto_resolve_after_grace() {
    let mut p = Probe::open(firing("a"));
    p.alerts(vec![resolved("a")], at(MIN));
    assert_eq!(p.incident.auto_resolve_at, Some(at(3 * MIN)));
    p.tick(at(2 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    p.tick(at(3 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Resolved);
    assert_eq!(
        p.incident.resolved_by.as_deref(),
        Some("system:auto-resolve")
    );
    assert_eq!(
        p.kinds(),
        vec![
            EventKind::Created,
            EventKind::AlertResolved,
            EventKind::Resolved
        ]
    );
}

#[test]
fn refire_inside_grace_cancels_auto_resolve() {
    let mut p = Probe::open(firing("a"));
    p.alerts(vec![resolved("a")], at(MIN));
    p.alerts(vec![firing("a")], at(2 * MIN));
    assert_eq!(p.incident.auto_resolve_at, None);
    p.tick(at(10 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    assert_eq!(
        p.kinds(),
        vec![
            EventKind::Created,
            EventKind::AlertResolved,
            EventKind::AlertAdded
        ]
    );
}

#[test]
fn auto_resolve_waits_for_every_alert() {
    let mut p = Probe::open(firing("a"));
    p.alerts(vec![firing("b"), resolved("a")], at(MIN));
    assert_eq!(p.incident.auto_resolve_at, None);
    p.alerts(vec![resolved("b")], at(2 * MIN));
    assert_eq!(p.incident.auto_resolve_at, Some(at(4 * MIN)));
}

#[test]
fn firing_inside_reopen_window_reopens_and_after_it_bounces() {
    let mut p = Probe::open(firing("a"));
    p.command(Command::Resolve, at(MIN)).unwrap();
    assert!(p.alerts(vec![firing("a")], at(10 * MIN)).is_empty());
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    assert_eq!(p.incident.reopen_count, 1);
    p.command(Command::Resolve, at(11 * MIN)).unwrap();
    let batch = vec![resolved("a"), firing("b"), resolved("b")];
    let bounced = p.alerts(batch, at(30 * MIN));
    assert_eq!(
        bounced.len(),
        2,
        "the late firing alert and everything after it"
    );
    assert_eq!(bounced[0].fingerprint, firing("b").fingerprint);
    assert_eq!(p.incident.status, IncidentStatus::Resolved);
    assert_eq!(p.incident.reopen_count, 1);
    p.assert_seq_gap_free();
}

#[test]
fn snooze_expiry_retriggers_and_restarts_escalation() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(T0);
    assert_eq!(p.escalations().len(), 1);
    p.command(
        Command::Snooze {
            until: at(30 * MIN),
        },
        at(MIN),
    )
    .unwrap();
    assert_eq!(p.incident.status, IncidentStatus::Snoozed);
    p.tick(at(29 * MIN));
    assert_eq!(
        p.escalations().len(),
        1,
        "snoozed incidents do not escalate"
    );
    p.tick(at(30 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    assert_eq!(
        p.escalations().last().map(|e| (e.0, e.1)),
        Some((0, 0)),
        "escalation restarts at step 1"
    );
    assert_eq!(p.escalations().len(), 2);
    assert!(p.kinds().contains(&EventKind::SnoozeExpired));
    assert!(matches!(
        p.command(Command::Snooze { until: at(MIN) }, at(31 * MIN)),
        Err(CommandError::Invalid { field: "until", .. })
    ));
}

#[test]
fn ack_timeout_retriggers_and_resumes_escalation() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(T0);
    p.command(Command::Acknowledge, at(MIN)).unwrap();
    assert_eq!(p.incident.ack_timeout_at, Some(at(31 * MIN)));
    p.tick(at(30 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Acknowledged);
    p.tick(at(31 * MIN));
    assert_eq!(p.incident.status, IncidentStatus::Triggered);
    assert_eq!(
        p.escalations()
            .iter()
            .map(|e| (e.0, e.1, e.2))
            .collect::<Vec<_>>(),
        vec![(0, 0, T0), (1, 0, at(31 * MIN))],
        "the pending step fires as soon as the acknowledgement times out"
    );
    assert_eq!(p.incident.escalation.next_at, Some(at(41 * MIN)));
    p.assert_seq_gap_free();
}

#[test]
fn escalation_two_steps_repeat_two_stopped_by_ack_resumed_by_unack() {
    let mut no_ack_timeout = route().as_ref().clone();
    no_ack_timeout.ack_timeout = Duration::ZERO;
    let first = alert("a", AlertStatus::Firing, Severity::Critical);
    let mut p = Probe::open_with(first, rules(), Arc::new(no_ack_timeout));
    p.tick(T0);
    p.tick(at(10 * MIN));
    assert_eq!(p.escalations().len(), 2);
    p.command(Command::Acknowledge, at(12 * MIN)).unwrap();
    p.tick(at(200 * MIN));
    assert_eq!(p.escalations().len(), 2, "acknowledged: nothing fires");
    p.command(Command::Unacknowledge, at(200 * MIN)).unwrap();
    // The pending step (loop 2, step 1) fires at once, then one every 10 minutes.
    p.tick(at(200 * MIN));
    for minutes in [210, 220, 230, 240, 250] {
        p.tick(at(minutes * MIN));
    }
    let fired: Vec<(u32, u32)> = p.escalations().iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(fired, vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]);
    assert_eq!(
        p.incident.escalation.next_at, None,
        "1 + repeat passes, then it stops"
    );
    let keys: std::collections::HashSet<String> = p.idempotency_keys().into_iter().collect();
    assert_eq!(
        keys.len(),
        6,
        "every step and loop has its own idempotency key"
    );
    assert!(matches!(
        p.command(Command::EscalateNow, at(300 * MIN)),
        Err(CommandError::NotApplicable { .. })
    ));
    p.assert_seq_gap_free();
}

#[test]
fn overdue_steps_fire_once_each_in_order() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(at(25 * MIN));
    let fired: Vec<(u32, u32, Timestamp)> = p.escalations();
    assert_eq!(
        fired.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
        vec![(0, 0), (1, 0), (0, 1)]
    );
    p.tick(at(25 * MIN));
    assert_eq!(
        p.escalations().len(),
        3,
        "a second tick at the same time fires nothing"
    );
    assert_eq!(
        p.incident.escalation.next_at,
        Some(at(30 * MIN)),
        "schedule keeps its own cadence"
    );
}

#[test]
fn escalate_now_fires_the_pending_step_at_once() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(T0);
    p.command(Command::EscalateNow, at(MIN)).unwrap();
    assert_eq!(
        p.escalations()
            .iter()
            .map(|e| (e.0, e.2))
            .collect::<Vec<_>>(),
        vec![(0, T0), (1, at(MIN))]
    );
    assert_eq!(p.incident.escalation.next_at, Some(at(11 * MIN)));
}

#[test]
fn reopen_gives_fresh_idempotency_keys() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(T0);
    p.command(Command::Resolve, at(MIN)).unwrap();
    p.command(Command::Reopen, at(2 * MIN)).unwrap();
    p.tick(at(2 * MIN));
    let keys = p.idempotency_keys();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[test]
fn resolved_incident_is_archived_after_quiet_retention() {
    let mut p = Probe::open(firing("a"));
    p.command(Command::Resolve, at(MIN)).unwrap();
    p.command(
        Command::AddNote {
            text: "postmortem later".into(),
        },
        at(30 * MIN),
    )
    .unwrap();
    p.tick(at(61 * MIN));
    assert!(!p.incident.archived, "the note restarted the quiet period");
    p.tick(at(90 * MIN));
    assert!(p.incident.archived);
    assert_eq!(p.kinds().last(), Some(&EventKind::Archived));
    assert_eq!(
        p.alerts(vec![firing("a")], at(91 * MIN)).len(),
        1,
        "archived incidents take nothing"
    );
}

#[test]
fn timer_generation_moves_with_the_deadline() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    let g0 = p.incident.timer_generation;
    p.alerts(
        vec![alert("a", AlertStatus::Firing, Severity::Critical)],
        at(MIN),
    );
    assert_eq!(
        p.incident.timer_generation, g0,
        "a duplicate moves no deadline"
    );
    p.command(Command::Acknowledge, at(MIN)).unwrap();
    assert_ne!(p.incident.timer_generation, g0);
}

#[test]
fn snapshot_round_trips_and_rejects_unknown_versions() {
    let mut p = Probe::open(firing("a"));
    p.command(Command::AddNote { text: "hi".into() }, at(MIN))
        .unwrap();
    let bytes = encode_incident(&p.incident);
    assert_eq!(decode_incident("k", &bytes).unwrap(), p.incident);
    let mut future = bytes.clone();
    future[0] = 99;
    let err = decode_incident("shard-1/abc", &future).unwrap_err();
    assert!(matches!(err, CodecError::UnknownVersion { found: 99, .. }));
    assert!(err.to_string().contains("shard-1/abc"));
    assert!(matches!(
        decode_incident("k", &bytes[..bytes.len() / 2]),
        Err(CodecError::Corrupt { .. })
    ));
    assert!(matches!(
        decode_incident("k", &[]),
        Err(CodecError::Empty { .. })
    ));
}

#[test]
fn last_fired_step_survives_the_snapshot_and_is_republished_within_the_window() {
    let mut p = Probe::open(alert("a", AlertStatus::Firing, Severity::Critical));
    p.tick(at(Duration::ZERO));
    let fired = p
        .incident
        .escalation
        .last_fired
        .clone()
        .expect("the first step fires at once");
    let decoded = decode_incident("k", &encode_incident(&p.incident)).unwrap();
    assert_eq!(decoded.escalation.last_fired, Some(fired.clone()));

    let again = decoded
        .recent_escalation(fired.at.plus(MIN), 2 * MIN)
        .expect("fired a minute ago, inside a two-minute window");
    assert_eq!(again.id, IncidentEvent::event_id(decoded.id, fired.seq));
    assert_eq!(again.change, fired.change());
    assert_eq!(
        decoded.recent_escalation(fired.at.plus(3 * MIN), 2 * MIN),
        None
    );

    // Version 1 had no last fired step: it still decodes, without one.
    let mut v1 = vec![1u8];
    bincode::serde::encode_into_std_write(&p.incident, &mut v1, bincode::config::standard())
        .unwrap();
    let old = decode_incident("k", &v1).unwrap();
    assert_eq!(old.escalation.last_fired, None);
    assert_eq!(old.id, p.incident.id);
}

/// An incident large enough for change frames: room for 40 alerts and
/// timeline entries, 20 alerts (`filler-N`) in it besides `first`.
fn large_probe(first: Alert) -> Probe {
    let mut rules = rules();
    rules.max_alerts_per_incident = 40;
    rules.max_timeline_entries = 40;
    let mut p = Probe::open_with(first, rules, route());
    let filler = (0..20).map(|n| firing(&format!("filler-{n}"))).collect();
    p.alerts(filler, T0);
    p
}

/// A commit that drops the snapshot an incident sent with its first alerts
/// of a round stores the next one instead: after `undo`, that one must
/// hold the dropped one's changes too.
#[test]
fn after_an_undone_write_the_next_frame_holds_its_changes_too() {
    let mut p = large_probe(firing("a"));
    let mut writer = SnapshotWriter::new(true);
    let SnapshotWrite::Whole(whole) = writer.write(&mut p.incident, at(MIN)) else {
        panic!("a writer's first write is whole");
    };
    p.alerts(vec![firing("b")], at(2 * MIN));
    let dropped = writer.write(&mut p.incident, at(2 * MIN));
    assert!(matches!(dropped, SnapshotWrite::Append(_)));
    p.alerts(vec![firing("c")], at(3 * MIN));
    writer.undo();
    let SnapshotWrite::Append(frame) = writer.write(&mut p.incident, at(3 * MIN)) else {
        panic!("changes since the whole write are a frame");
    };
    let stored = [whole.as_slice(), frame.as_slice()].concat();
    assert_eq!(decode_incident("k", &stored).unwrap(), p.incident);

    // Undoing a whole write makes the next one whole again.
    writer.forget();
    writer.write(&mut p.incident, at(3 * MIN));
    writer.undo();
    assert!(matches!(
        writer.write(&mut p.incident, at(3 * MIN)),
        SnapshotWrite::Whole(_)
    ));
}

/// A whole write made by the caller from an encoding it holds (the shard,
/// for a passivated incident after a failed commit) is where the writer's
/// next frame starts.
#[test]
fn a_whole_write_the_caller_made_is_the_base_of_the_next_frame() {
    let mut p = large_probe(firing("a"));
    let mut writer = SnapshotWriter::new(true);
    writer.write(&mut p.incident, at(MIN));
    writer.forget();
    let whole = encode_incident(&p.incident);
    writer.wrote_whole(whole.len(), p.incident.seq, at(MIN));
    p.alerts(vec![firing("a")], at(2 * MIN));
    let counts = writer.write(&mut p.incident, at(2 * MIN));
    let SnapshotWrite::Append(frame) = &counts else {
        panic!("a duplicate after the caller's whole write is a frame");
    };
    assert!(frame.len() * 4 <= whole.len());
    let stored = [whole.as_slice(), frame.as_slice()].concat();
    assert_eq!(decode_incident("k", &stored).unwrap(), p.incident);
}

#[test]
fn after_a_whole_write_a_duplicate_is_stored_as_a_small_change_frame() {
    let mut p = large_probe(firing("a"));
    p.alerts(vec![firing("b"), firing("c")], at(MIN));
    let mut writer = SnapshotWriter::new(true);
    // Later than the alerts: those changed in the same millisecond as a
    // snapshot are written again by the next.
    let SnapshotWrite::Whole(whole) = writer.write(&mut p.incident, at(MIN + SEC)) else {
        panic!("a writer's first write is whole");
    };
    p.alerts(vec![firing("b")], at(2 * MIN));
    let SnapshotWrite::Append(frame) = writer.write(&mut p.incident, at(2 * MIN)) else {
        panic!("a duplicate is stored as a change frame");
    };
    let holds = |bytes: &[u8], name: &str| {
        let fingerprint = firing(name).fingerprint;
        bytes
            .windows(fingerprint.len())
            .any(|w| w == fingerprint.as_bytes())
    };
    assert!(["a", "b", "c"].iter().all(|name| holds(&whole, name)));
    assert!(
        holds(&frame, "b") && !holds(&frame, "a") && !holds(&frame, "c"),
        "the frame holds the changed alert only"
    );
    assert!(frame.len() < whole.len());
    let stored = [whole.as_slice(), frame.as_slice()].concat();
    assert_eq!(decode_incident("k", &stored).unwrap(), p.incident);

    writer.forget();
    assert!(
        matches!(
            writer.write(&mut p.incident, at(2 * MIN)),
            SnapshotWrite::Whole(_)
        ),
        "after a lost write the next is whole"
    );
    let mut old = encode_incident(&p.incident);
    old[0] = 2;
    old.extend_from_slice(&frame);
    assert!(
        matches!(decode_incident("k", &old), Err(CodecError::Corrupt { .. })),
        "version 2 had no change frames"
    );
}

/// Stored bytes of a whole write followed by `frames`.
fn stored(whole: &SnapshotWrite, frames: &[&SnapshotWrite]) -> Vec<u8> {
    let SnapshotWrite::Whole(whole) = whole else {
        panic!("stored bytes start with a whole write");
    };
    let mut bytes = whole.to_vec();
    for frame in frames {
        let SnapshotWrite::Append(frame) = frame else {
            panic!("a whole write after the first");
        };
        bytes.extend_from_slice(frame);
    }
    bytes
}

#[test]
fn duplicates_alone_are_stored_as_a_counts_frame() {
    let mut p = large_probe(firing("a"));
    let mut writer = SnapshotWriter::new(true);
    let whole = writer.write(&mut p.incident, at(MIN));
    p.alerts(
        vec![firing("a"), firing("a"), resolved("nope")],
        at(2 * MIN),
    );
    let seq = p.incident.seq;
    let changes = encode_changes(&mut p.incident, at(MIN), seq);
    let counts = writer.write(&mut p.incident, at(2 * MIN));
    let SnapshotWrite::Append(frame) = &counts else {
        panic!("duplicates since a whole write are a frame");
    };
    assert!(
        frame.len() * 4 < changes.len(),
        "{} bytes against a change frame's {}",
        frame.len(),
        changes.len()
    );
    assert_eq!(
        decode_incident("k", &stored(&whole, &[&counts])).unwrap(),
        p.incident
    );
    // A commit retried after an unclear failure stores it twice.
    assert_eq!(
        decode_incident("k", &stored(&whole, &[&counts, &counts])).unwrap(),
        p.incident
    );

    // Over state at another seq (frames lost in between), it is refused.
    p.alerts(vec![firing("new")], at(3 * MIN));
    let mut later = encode_incident(&p.incident);
    later.extend_from_slice(frame);
    assert!(matches!(
        decode_incident("k", &later),
        Err(CodecError::Corrupt { .. })
    ));
}

/// A frame's alert count is put in front of its alerts after they are
/// written; past 250 alerts it takes three bytes instead of one.
#[test]
fn frames_of_hundreds_of_alerts_read_back() {
    let mut rules = rules();
    rules.max_alerts_per_incident = 400;
    let mut p = Probe::open_with(firing("a"), rules, route());
    let many: Vec<_> = (0..300).map(|n| firing(&format!("many-{n}"))).collect();
    p.alerts(many.clone(), T0);
    let whole = encode_incident(&p.incident);
    let seq = p.incident.seq;
    p.alerts(many, at(MIN));
    assert_eq!(p.incident.seq, seq, "duplicates only");
    for frame in [
        encode_counts(&p.incident, at(MIN)),
        encode_changes(&mut p.incident, at(MIN), seq),
    ] {
        let stored = [whole.as_slice(), &frame].concat();
        assert_eq!(decode_incident("k", &stored).unwrap(), p.incident);
    }
}

/// While replicas of a build that cannot read counts frames share the
/// store (a rolling upgrade), duplicates are stored as the change frame
/// every build since format 3 reads.
#[test]
fn without_counts_frames_duplicates_are_stored_as_a_change_frame() {
    let mut p = large_probe(firing("a"));
    let mut writer = SnapshotWriter::new(false);
    let whole = writer.write(&mut p.incident, at(MIN));
    p.alerts(vec![firing("a"), firing("a")], at(2 * MIN));
    let seq = p.incident.seq;
    let changes = encode_changes(&mut p.incident, at(MIN), seq);
    let frame = writer.write(&mut p.incident, at(2 * MIN));
    let SnapshotWrite::Append(bytes) = &frame else {
        panic!("duplicates since a whole write are a frame");
    };
    assert_eq!(**bytes, changes);
    assert_eq!(
        decode_incident("k", &stored(&whole, &[&frame])).unwrap(),
        p.incident
    );
}

/// A timer can change an incident without recording an event: here its
/// escalation policy is gone from the configuration, so escalation stops.
/// A counts frame after it would lose that; the actor's note keeps it out.
#[test]
fn after_a_timer_or_command_duplicates_are_not_a_counts_frame() {
    let critical = || alert("a", AlertStatus::Firing, Severity::Critical);
    let mut p = large_probe(critical());
    // Fired again, so the duplicate below is inside its dedup window.
    p.alerts(vec![critical()], at(9 * MIN));
    let mut writer = SnapshotWriter::new(true);
    let mut unnoted = SnapshotWriter::new(true);
    let whole = writer.write(&mut p.incident, at(9 * MIN + SEC));
    unnoted.write(&mut p.incident, at(9 * MIN + SEC));
    p.rules.policies = Arc::new(EscalationPolicies::new(Vec::new()).unwrap());
    let seq = p.incident.seq;
    assert!(p.incident.escalation.next_at.is_some(), "a step is due");
    p.tick(at(11 * MIN));
    assert_eq!(p.incident.seq, seq, "no event recorded");
    assert_eq!(p.incident.escalation.next_at, None);
    p.alerts(vec![critical()], at(12 * MIN));
    assert_eq!(p.incident.seq, seq, "a duplicate");

    let counts = unnoted.write(&mut p.incident, at(12 * MIN));
    let read = decode_incident("k", &stored(&whole, &[&counts])).unwrap();
    assert!(
        read.escalation.next_at.is_some(),
        "a counts frame misses it"
    );

    writer.note_other_input();
    let frame = writer.write(&mut p.incident, at(12 * MIN));
    assert_eq!(
        decode_incident("k", &stored(&whole, &[&frame])).unwrap(),
        p.incident
    );

    // That write taken back (it was an early one), the next still holds
    // what the timer changed, though only a duplicate came in between.
    p.alerts(vec![critical()], at(13 * MIN));
    writer.undo();
    let frame = writer.write(&mut p.incident, at(13 * MIN));
    assert_eq!(
        decode_incident("k", &stored(&whole, &[&frame])).unwrap(),
        p.incident
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Alert {
            name: u8,
            firing: bool,
            critical: bool,
        },
        Command(u8),
        Wait(u16),
        /// A commit takes a snapshot; `twice`: its change frame is stored
        /// twice, as a commit retried after an unclear failure would.
        Snapshot {
            twice: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(name, firing, critical)| Op::Alert { name, firing, critical }),
            2 => (0u8..9).prop_map(Op::Command),
            2 => (1u16..2_000).prop_map(Op::Wait),
            2 => any::<bool>().prop_map(|twice| Op::Snapshot { twice }),
        ]
    }

    /// Applies one op to the incident at `now` (a wait moves `now` on and
    /// fires what came due); returns how many alerts were handed back for a
    /// new incident. Snapshots are the caller's.
    fn run(p: &mut Probe, op: &Op, now: &mut Timestamp) -> u64 {
        match *op {
            Op::Alert {
                name,
                firing,
                critical,
            } => {
                let status = if firing {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                };
                let severity = if critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                let alert = alert(&format!("a{name}"), status, severity);
                p.alerts(vec![alert], *now).len() as u64
            }
            Op::Command(n) => {
                let _ = p.command(command(n, *now), *now);
                0
            }
            Op::Wait(seconds) => {
                *now = now.plus(Duration::from_secs(u64::from(seconds)));
                p.tick(*now);
                0
            }
            Op::Snapshot { .. } => 0,
        }
    }

    fn command(n: u8, now: Timestamp) -> Command {
        match n {
            0 => Command::Acknowledge,
            1 => Command::Unacknowledge,
            2 => Command::Resolve,
            3 => Command::Reopen,
            4 => Command::Assign {
                assignee: Some("x".into()),
            },
            5 => Command::AddNote { text: "n".into() },
            6 => Command::EscalateNow,
            7 => Command::Snooze {
                until: now.plus(10 * MIN),
            },
            _ => Command::ChangeSeverity {
                severity: Severity::Critical,
            },
        }
    }

    proptest! {
        /// Under any interleaving of alerts, commands and time, seq grows by
        /// one per event, and every alert is either counted by the incident
        /// or handed back for a new one: none is lost.
        #[test]
        fn seq_is_gap_free_and_no_alert_is_lost(ops in proptest::collection::vec(op(), 1..80)) {
            let mut p = Probe::open(firing("a0"));
            let mut now = T0;
            let mut sent = 1u64;
            let mut handed_back = 0u64;
            for op in ops {
                if matches!(op, Op::Alert { .. }) {
                    sent += 1;
                }
                handed_back += run(&mut p, &op, &mut now);
            }
            p.assert_seq_gap_free();
            prop_assert_eq!(p.incident.total_alerts + handed_back, sent);
            prop_assert!(p.incident.timeline.len() <= p.rules.max_timeline_entries);
            prop_assert!(p.incident.alerts.len() <= p.rules.max_alerts_per_incident);
        }

        /// Whatever mix of whole writes and change frames an incident's
        /// snapshots become, what the store holds decodes to the incident as
        /// it was at the last snapshot, also when a frame was stored twice.
        #[test]
        fn stored_writes_decode_to_the_incident(ops in proptest::collection::vec(op(), 1..120)) {
            let mut p = large_probe(firing("a0"));
            let mut now = T0;
            let mut writer = SnapshotWriter::new(true);
            let mut stored = Vec::new();
            for op in ops {
                run(&mut p, &op, &mut now);
                // As the actor does for commands and timers.
                if matches!(op, Op::Command(_) | Op::Wait(_)) {
                    writer.note_other_input();
                }
                let Op::Snapshot { twice } = op else { continue };
                match writer.write(&mut p.incident, now) {
                    SnapshotWrite::Whole(bytes) => stored = bytes.to_vec(),
                    SnapshotWrite::Append(frame) => {
                        prop_assert!(!stored.is_empty(), "a frame before any whole write");
                        stored.extend_from_slice(&frame);
                        if twice {
                            stored.extend_from_slice(&frame);
                        }
                    }
                }
                prop_assert_eq!(decode_incident("k", &stored).unwrap(), p.incident.clone());
            }
        }
    }
}
