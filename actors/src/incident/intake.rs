use std::time::Instant;

use crate::model::{Alert, Incident, Timestamp};
use crate::shard::ShardContext;
use crate::telemetry;

/// Applies a group's alerts to an existing incident and sends out the
/// events they raise. The one path alerts take into an incident, whether
/// its actor runs it or its shard applies them to it passivated (over
/// `max_resident`). Returns the alerts it did not take, which belong to a
/// new incident (see `Incident::apply_alerts`).
pub(crate) fn take_alerts(
    incident: &mut Incident,
    alerts: Vec<Alert>,
    context: &ShardContext,
    now: Timestamp,
    received: Instant,
) -> Vec<Alert> {
    let mut events = Vec::new();
    let duplicates_before = incident.duplicate_alerts;
    let bounced = incident.apply_alerts(alerts, now, &context.rules, &mut events);
    telemetry::alerts_deduplicated(incident.duplicate_alerts - duplicates_before);
    if !events.is_empty() {
        telemetry::alert_to_event(received.elapsed());
        context.publish(incident, events);
    }
    bounced
}
