//! Every metric the engine records, named `incidentd_<thing>_<unit>[_total]`.
//! The service installs the Prometheus exporter; without one these are no-ops.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::model::{Change, IncidentEvent};

pub fn events_emitted(events: &[IncidentEvent]) {
    for event in events {
        let severity = event.incident.severity.as_str();
        match &event.change {
            Change::Created { .. } => {
                counter!("incidentd_incidents_created_total", "severity" => severity).increment(1)
            }
            Change::Acknowledged => {
                counter!("incidentd_incidents_acknowledged_total", "severity" => severity)
                    .increment(1)
            }
            Change::Resolved { .. } => {
                counter!("incidentd_incidents_resolved_total", "severity" => severity).increment(1)
            }
            Change::Reopened { .. } => {
                counter!("incidentd_incidents_reopened_total", "severity" => severity).increment(1)
            }
            Change::Escalated { .. } => {
                counter!("incidentd_escalation_steps_fired_total").increment(1)
            }
            _ => {}
        }
        counter!("incidentd_incident_events_total", "kind" => event.kind.as_str()).increment(1);
    }
}

pub fn alerts_without_incident(count: usize) {
    counter!("incidentd_alerts_ignored_total", "reason" => "resolved_without_incident")
        .increment(count as u64);
}

pub fn alerts_deduplicated(count: u64) {
    if count > 0 {
        counter!("incidentd_alerts_deduplicated_total").increment(count);
    }
}

/// From the engine taking an alert to the incident event it caused.
pub fn alert_to_event(latency: Duration) {
    histogram!("incidentd_alert_to_event_seconds").record(latency.as_secs_f64());
}

pub fn alerts_replayed(count: usize) {
    counter!("incidentd_alerts_ignored_total", "reason" => "already_applied")
        .increment(count as u64);
}

pub fn shard_state(shard: usize, pending: usize, live: usize, resident: usize, timers: usize) {
    let shard = shard.to_string();
    gauge!("incidentd_armed_timers", "shard" => shard.clone()).set(timers as f64);
    gauge!("incidentd_shard_pending_alerts", "shard" => shard.clone()).set(pending as f64);
    gauge!("incidentd_live_incidents", "shard" => shard.clone()).set(live as f64);
    gauge!("incidentd_resident_incidents", "shard" => shard).set(resident as f64);
}

pub fn flush_done(duration: Duration, incidents: usize, ok: bool) {
    histogram!("incidentd_snapshot_flush_duration_seconds").record(duration.as_secs_f64());
    histogram!("incidentd_snapshot_flush_batch_size").record(incidents as f64);
    if !ok {
        counter!("incidentd_snapshot_flush_failures_total").increment(1);
    }
}

/// How long the store took to take one commit's batch: the rest of a
/// flush's duration is gathering snapshots from the incidents.
pub fn batch_stored(duration: Duration) {
    histogram!("incidentd_snapshot_store_duration_seconds").record(duration.as_secs_f64());
}

/// Bytes one stored commit wrote: incidents written whole, and change
/// frames appended to stored incidents.
pub fn snapshot_bytes_written(whole: usize, changes: usize) {
    counter!("incidentd_snapshot_written_bytes_total", "form" => "whole").increment(whole as u64);
    counter!("incidentd_snapshot_written_bytes_total", "form" => "changes")
        .increment(changes as u64);
}

/// How one commit got its resident incidents' snapshots: sent with their
/// first alerts of the round and stored as is, asked again at the commit
/// because more input followed those alerts, or asked at the commit only.
pub fn snapshots_asked(with_alerts: usize, again: usize, at_commit: usize) {
    for (how, count) in [
        ("with_alerts", with_alerts),
        ("again_at_commit", again),
        ("at_commit", at_commit),
    ] {
        counter!("incidentd_snapshot_requests_total", "how" => how).increment(count as u64);
    }
}

pub fn incident_restarted() {
    counter!("incidentd_incident_restarts_total").increment(1);
}

pub fn snapshot_rejected() {
    counter!("incidentd_snapshots_rejected_total").increment(1);
}

pub fn restore_done(shard: usize, duration: Duration, incidents: usize) {
    histogram!("incidentd_shard_restore_duration_seconds").record(duration.as_secs_f64());
    gauge!("incidentd_shard_restored_incidents", "shard" => shard.to_string())
        .set(incidents as f64);
}

pub fn passivated(count: usize) {
    counter!("incidentd_incidents_passivated_total").increment(count as u64);
}

pub fn activated() {
    counter!("incidentd_incidents_activated_total").increment(1);
}

/// One passivated incident updated by its shard at `max_resident`, with a
/// group's alerts of one batch or its due timers, without waking it: a
/// steady rate says the cap is reached.
pub fn updated_while_passive() {
    counter!("incidentd_incidents_updated_while_passive_total").increment(1);
}

pub fn shard_fenced() {
    counter!("incidentd_shards_fenced_total").increment(1);
}

pub fn escalations_redelivered(count: usize) {
    counter!("incidentd_escalations_redelivered_total").increment(count as u64);
}
