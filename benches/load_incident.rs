//! An incident shaped like the HTTP load scenario's (load-tests/), for the
//! benches that price what one incident costs: its snapshot, its events.

use std::sync::Arc;

use incidentd_actors::escalation::EscalationPolicies;
use incidentd_actors::model::{
    Alert, AlertStatus, Incident, IncidentEvent, IncidentId, Labels, Timestamp,
};
use incidentd_actors::routing::RouteSettings;
use incidentd_actors::{EngineSettings, IncidentRules};

/// An alert shaped like the load generator's Alertmanager alerts.
fn alert(instance: usize) -> Alert {
    let labels: Labels = [
        ("alertname", "load-r1-17".to_string()),
        ("instance", format!("instance-{instance}")),
        ("severity", "critical".to_string()),
        ("job", "incidentd-load".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let mut alert = Alert::firing(labels);
    alert.summary = format!("load-r1-17 instance {instance}").into();
    alert
}

/// An incident opened by one alert and then joined by `alerts - 1` more,
/// each adding a timeline entry; then `cycles` times all of them resolve
/// and fire again an hour apart (two timeline entries per alert and cycle).
/// With the events it published, in order.
pub fn incident(alerts: usize, cycles: i64) -> (Incident, Vec<IncidentEvent>) {
    let rules = IncidentRules::new(EscalationPolicies::default(), &EngineSettings::default());
    let route = Arc::new(RouteSettings::manual());
    let now = Timestamp::from_millis(1_800_000_000_000);
    let mut events = Vec::new();
    let mut incident = Incident::open(
        IncidentId::new(now),
        ("default", "root:{alertname=\"load-r1-17\"}"),
        &route,
        &alert(0),
        now,
        &rules,
        &mut events,
    );
    let rest = (1..alerts).map(alert).collect();
    incident.apply_alerts(rest, now, &rules, &mut events);
    let hour = 3_600_000;
    for cycle in 0..cycles {
        for (offset, status) in [(1, AlertStatus::Resolved), (2, AlertStatus::Firing)] {
            let at = Timestamp::from_millis(now.millis() + (2 * cycle + offset) * hour);
            let batch = (0..alerts).map(|i| Alert { status, ..alert(i) }).collect();
            incident.apply_alerts(batch, at, &rules, &mut events);
        }
    }
    (incident, events)
}
