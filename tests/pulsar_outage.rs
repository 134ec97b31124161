//! A Pulsar outage under load, against the real broker that
//! `scripts/services.sh up pulsar` starts (`scripts/test.sh` does), named by
//! INCIDENTD_TEST_PULSAR_URL. This test stops and starts that broker, so it
//! lives in a test binary of its own: cargo runs test binaries one at a
//! time, and no other test sees the outage.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::events::{last_seqs, NoGap};
use common::load::{alert_rounds, native_alert};
use common::pulsar::read_until;
use common::Service;
use pulsar::SubType;

const OUTAGE: Duration = Duration::from_secs(15);

/// Runs `scripts/services.sh <action> pulsar`. The restart keeps the
/// broker's data whatever the caller's environment says: the test reads the
/// events published before the outage.
fn pulsar_service(action: &str) {
    let script = common::checkout::checkout_dir().join("scripts/services.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args([action, "pulsar"])
        .env_remove("INCIDENTD_SERVICES_FRESH")
        .status()
        .unwrap_or_else(|e| panic!("running {} {action} pulsar: {e}", script.display()));
    assert!(
        status.success(),
        "{} {action} pulsar failed: {status}",
        script.display()
    );
}

/// Whether ingest refuses new alerts because the event backlog is at its
/// bound, within `within`. Each probe is a new alert of one of the loaded
/// groups: it opens no incident, but adds an event, so the probes fill the
/// backlog themselves even when the loader finished before the outage.
async fn backlog_refuses_input(service: &Service, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut attempt = 0;
    while Instant::now() < deadline {
        attempt += 1;
        let probe = serde_json::json!([native_alert("O0", 1_000 + attempt, "warning")]);
        let response = service.post_json("/api/v1/alerts", &probe).await;
        if response.status() == 503 {
            let body: serde_json::Value = response.json().await.expect("JSON body");
            let message = body["message"].as_str().unwrap_or_default();
            if message.contains("not yet acknowledged by the broker (max_backlog 20)") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_held_during_a_pulsar_outage_all_arrive_after_it() {
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let topic = format!("persistent://public/default/outage-{run}");
    let subscription = format!("outage-check-{run}");
    // Subscribed before anything is published, so the broker keeps it all
    // for this subscription, across its own restart.
    {
        let client = common::pulsar::client().await;
        common::pulsar::subscribe(&client, &topic, &subscription, SubType::Exclusive).await;
    }
    let config = format!(
        r#"
[engine]
shards = 8
[routing]
group_by = ["alertname"]
[[events.pulsar]]
url = "{url}"
topic = "{topic}"
produce_timeout = "2s"
# Small, so the outage reaches it: new input is then refused.
max_backlog = 20
"#,
        url = common::pulsar::pulsar_url()
    );
    let service = Service::start(&config).await;

    // Rounds keep coming during the outage; each is sent again until taken.
    let patience = OUTAGE + Duration::from_secs(120);
    let loader = alert_rounds(&service.base, "O", 60, 50, patience);
    tokio::time::sleep(Duration::from_secs(1)).await;
    pulsar_service("down");
    let outage_began = Instant::now();
    let refusing = backlog_refuses_input(&service, OUTAGE).await;
    tokio::time::sleep(OUTAGE.saturating_sub(outage_began.elapsed())).await;
    pulsar_service("up");
    assert!(
        refusing,
        "during the outage ingest refused new alerts: the event backlog was at its bound"
    );
    println!("Pulsar was down for {:?}", outage_began.elapsed());
    loader.await.expect("loader");

    let retried = service
        .metric("incidentd_events_published_total", &["outcome=\"retried\""])
        .await;
    assert!(
        retried > 0.0,
        "the service saw the outage (no event was retried)"
    );
    let last_seq = last_seqs(&service).await;
    assert_eq!(last_seq.len(), 50);
    let events: u64 = last_seq.values().sum();

    let client = common::pulsar::client().await;
    let mut consumer =
        common::pulsar::subscribe(&client, &topic, &subscription, SubType::Exclusive).await;
    let mut order = NoGap::default();
    read_until(&mut consumer, Duration::from_secs(120), |_, payload| {
        order.check(payload);
        order.highest == last_seq
    })
    .await;
    assert_eq!(
        order.highest, last_seq,
        "every incident's events, up to its last seq, after the outage"
    );
    println!(
        "{events} events, {} repeated, {retried} sends retried during the outage",
        order.repeats
    );
}
