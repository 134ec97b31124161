//! Every ingest format against the real binary: valid, invalid and mixed
//! batches, and the 400/401/413/415 paths.

mod common;

use common::Service;
use serde_json::{json, Value};

async fn post_raw(
    service: &Service,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    service
        .client
        .post(format!("{}{path}", service.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST")
}

/// The first incident's status once it is `wanted`, or the last one seen
/// after 5 s.
async fn first_incident_status_becomes(service: &Service, wanted: &str) -> String {
    let mut status = String::new();
    for _ in 0..100 {
        status = service.all_incidents().await[0]["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == wanted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    status
}

async fn incident_titles(service: &Service) -> Vec<String> {
    let mut titles: Vec<String> = service
        .all_incidents()
        .await
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_v2_takes_valid_alerts_and_names_invalid_ones() {
    let service = Service::start("").await;
    let batch = json!([
        {"labels": {"alertname": "HighLatency", "severity": "critical"}, "annotations": {"summary": "p99 over 1s"}},
        {"annotations": {"summary": "no labels"}},
        {"labels": {"alertname": "DiskFull"}, "startsAt": "not a time"},
        {"labels": {"alertname": "CpuHot"}, "generatorURL": "http://prometheus/graph"}
    ]);
    let response = service.post_json("/api/v2/alerts", &batch).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "labels");
    assert_eq!(body["rejected"][1]["index"], 2);
    assert_eq!(body["rejected"][1]["errors"][0]["field"], "startsAt");
    assert_eq!(
        incident_titles(&service).await,
        vec!["CpuHot", "p99 over 1s"]
    );

    let ok = service
        .post_json(
            "/api/v2/alerts",
            &json!([{"labels": {"alertname": "CpuHot"}}]),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        incident_titles(&service).await.len(),
        2,
        "a repeat joins its incident"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_payload_version_4() {
    let service = Service::start("").await;
    let payload = json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"InstanceDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incidentd",
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown", "job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "InstanceDown", "job": "node", "instance": "a:9100"},
             "annotations": {"summary": "a:9100 is down"}, "startsAt": "2026-11-27T09:58:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "c0ffee0123456789"}
        ]
    });
    assert_eq!(
        service
            .post_json("/api/v1/webhooks/alertmanager", &payload)
            .await
            .status(),
        200
    );
    let incidents = service.all_incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["title"], "a:9100 is down");
    let wrong = service
        .post_json(
            "/api/v1/webhooks/alertmanager",
            &json!({"version": "3", "alerts": []}),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("version \"3\""),
        "{body}"
    );
}

/// The trigger's dedup key is stored with its alert: after a SIGKILL right
/// after the 202, an acknowledge and a resolve still find its group (here
/// grouped by `source`, which those events do not carry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_acknowledge_and_resolve_find_a_trigger_sent_before_a_crash() {
    let mut service =
        Service::start("[routing]\ngroup_by = [\"source\"]\nauto_resolve_grace = \"0s\"\n").await;
    let event = |action: &str| {
        json!({
            "routing_key": "samplekeyhere",
            "dedup_key": "disk-host2",
            "event_action": action,
            "payload": {"summary": "disk full", "source": "host2.example.com", "severity": "error"}
        })
    };
    assert_eq!(
        service
            .post_json("/v2/enqueue", &event("trigger"))
            .await
            .status(),
        202
    );
    service.restart().await; // SIGKILL, then start again on the same data dir

    let ack = service
        .post_json("/v2/enqueue", &event("acknowledge"))
        .await;
    assert_eq!(ack.status(), 202, "{}", ack.text().await.unwrap());
    let incidents = service.all_incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["status"], "acknowledged");

    let resolve = service.post_json("/v2/enqueue", &event("resolve")).await;
    assert_eq!(resolve.status(), 202, "{}", resolve.text().await.unwrap());
    let status = first_incident_status_becomes(&service, "resolved").await;
    assert_eq!(status, "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_trigger_acknowledge_resolve() {
    let service =
        Service::start("[routing]\ngroup_by = [\"source\"]\nauto_resolve_grace = \"0s\"\n").await;
    let trigger = json!({
        "payload": {
            "summary": "Example alert on host1.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "severity": "critical",
            "source": "host1.example.com",
            "component": "postgres",
            "custom_details": {"ping time": "1500ms", "load avg": 0.75}
        },
        "routing_key": "samplekeyhere",
        "dedup_key": "disk-host1",
        "event_action": "trigger",
        "client": "Sample Monitoring Service"
    });
    let response = service.post_json("/v2/enqueue", &trigger).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "disk-host1"})
    );

    let ack = json!({"routing_key": "samplekeyhere", "dedup_key": "disk-host1", "event_action": "acknowledge"});
    assert_eq!(service.post_json("/v2/enqueue", &ack).await.status(), 202);
    let incidents = service.all_incidents().await;
    assert_eq!(incidents[0]["status"], "acknowledged");

    let resolve = json!({"routing_key": "samplekeyhere", "dedup_key": "disk-host1", "event_action": "resolve"});
    assert_eq!(
        service.post_json("/v2/enqueue", &resolve).await.status(),
        202
    );
    let status = first_incident_status_becomes(&service, "resolved").await;
    assert_eq!(
        status, "resolved",
        "all its alerts resolved: the incident resolves"
    );

    let invalid = service
        .post_json(
            "/v2/enqueue",
            &json!({"event_action": "trigger", "payload": {"summary": "x"}}),
        )
        .await;
    assert_eq!(invalid.status(), 400);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(body["status"], "invalid event");
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        3,
        "routing_key, payload.source, payload.severity: {body}"
    );

    let unknown = json!({"routing_key": "samplekeyhere", "dedup_key": "never-sent", "event_action": "acknowledge"});
    assert_eq!(
        service.post_json("/v2/enqueue", &unknown).await.status(),
        400
    );

    let big = "x".repeat(600 * 1024);
    let too_large = post_raw(
        &service,
        "/v2/enqueue",
        "application/json",
        format!("{{\"pad\": \"{big}\"}}"),
    )
    .await;
    assert_eq!(too_large.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_json_and_ndjson_with_error_paths() {
    let service = Service::start("[server]\nbody_limit_bytes = 4096\n").await;
    let ndjson = "{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"}}\n{broken\n{\"status\":\"firing\",\"labels\":{\"alertname\":\"B\"}}\n";
    let response = post_raw(&service, "/api/v1/alerts", "application/x-ndjson", ndjson).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(
        body["rejected"][0]["index"], 2,
        "NDJSON rejections are named by line"
    );
    assert_eq!(incident_titles(&service).await, vec!["A", "B"]);

    let malformed = post_raw(
        &service,
        "/api/v1/alerts",
        "application/json",
        "{\"status\": ",
    )
    .await;
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["message"].as_str().unwrap().contains("line 1 column"),
        "{body}"
    );

    let wrong_type = post_raw(&service, "/api/v1/alerts", "text/plain", "hello").await;
    assert_eq!(wrong_type.status(), 415);
    let too_large = post_raw(
        &service,
        "/api/v1/alerts",
        "application/json",
        "x".repeat(5000),
    )
    .await;
    assert_eq!(too_large.status(), 413);
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_everything_but_operations() {
    let service = Service::start("[server]\nauth_tokens = [\"t0ken\"]\n").await;
    let alert = json!({"status": "firing", "labels": {"alertname": "A"}});
    assert_eq!(
        service.post_json("/api/v1/alerts", &alert).await.status(),
        401
    );
    let with_token = service
        .client
        .post(format!("{}/api/v1/alerts", service.base))
        .bearer_auth("t0ken")
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
    for open in ["/healthz", "/readyz", "/metrics"] {
        let r = service
            .client
            .get(format!("{}{open}", service.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{open} needs no token");
    }
    let metrics = service
        .client
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("incidentd_alerts_received_total"),
        "{metrics}"
    );
    assert!(metrics.contains("incidentd_http_requests_total"));
    for histogram in [
        "incidentd_alert_to_event_seconds_bucket",
        "incidentd_ingest_to_durable_seconds_bucket",
        "incidentd_snapshot_flush_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(histogram),
            "{histogram} missing from:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("incidentd_incidents_created_total{severity=\"warning\"} 1"),
        "{metrics}"
    );
}
