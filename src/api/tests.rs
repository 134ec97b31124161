//! The API through the whole router (auth included), in process: an engine
//! on the in-memory store with the event bus as its sink.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use incidentd_actors::model::{Alert, IncidentSummary, Labels, Severity};
use incidentd_actors::ports::memory::MemoryStore;
use incidentd_actors::ports::TokioClock;
use incidentd_actors::{compile_rules, Engine, Ports};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::bus::EventBus;
use crate::config::Config;
use crate::state::AppState;

const TOKEN: &str = "s3cr3t-token";

const CONFIG: &str = r#"
[server]
auth_tokens = ["s3cr3t-token"]
sse_replay_events = 50

[engine]
shards = 2

[routing]
group_by = ["alertname", "instance"]
policies = { default = "page" }

[[routing.routes]]
id = "db"
matchers = ['svc="db"']
service = "db"
team = "dba"

[[routing.routes]]
id = "web"
matchers = ['svc="web"']
service = "web"
team = "frontend"

[[escalation_policies]]
id = "page"
[[escalation_policies.steps]]
escalate_after = "10m"
targets = ["user:alice"]
[[escalation_policies.steps]]
escalate_after = "10m"
targets = ["team:sre"]
"#;

struct App {
    router: Router,
    state: AppState,
}

async fn app() -> App {
    let config: Config = toml::from_str(CONFIG).unwrap();
    let (tree, policies) =
        compile_rules(&config.routing, config.escalation_policies.clone()).unwrap();
    let bus = Arc::new(EventBus::new(config.server.sse_replay_events));
    let ports = Ports {
        store: Arc::new(MemoryStore::default()),
        sink: bus.clone(),
        clock: Arc::new(TokioClock::new()),
    };
    let (engine, _) = Engine::start(config.engine.clone(), tree, policies, ports)
        .await
        .unwrap();
    let engine = Arc::new(engine);
    let state = AppState {
        intake: crate::intake::Intake::standalone(engine.clone()),
        pagerduty: Arc::new(crate::ingest::pagerduty_keys::memory::keys(1_000)),
        engine,
        bus,
        subscriptions: crate::subscriptions::Subscriptions::start(
            Arc::new(crate::subscriptions::memory::MemorySubscriptions::default()),
            config.subscriptions.clone(),
            reqwest::Client::new(),
        )
        .await
        .unwrap(),
        config: Arc::new(config),
        metrics: crate::telemetry::metrics(),
        shutting_down: Default::default(),
        directory: crate::state::Directory::Local,
    };
    App {
        router: crate::server::router(state.clone()),
        state,
    }
}

impl App {
    /// Sends a request with the bearer token; returns status and JSON body.
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let response = self
            .router
            .clone()
            .oneshot(request(method, uri, body))
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    async fn create(&self, title: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/incidents",
                json!({ "title": title, "severity": "warning" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Opens an SSE stream; `last_event_id` goes in the header.
    async fn events(&self, query: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = request(Method::GET, &format!("/api/v1/events{query}"), None);
        if let Some(id) = last_event_id {
            request
                .headers_mut()
                .insert("last-event-id", id.parse().unwrap());
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        SseReader {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }
}

fn request(method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// One parsed SSE event.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

struct SseReader {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl SseReader {
    /// The next event (keep-alive comments skipped), or a panic after 5 s.
    async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut sse = Sse {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        sse.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        sse.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        sse.data = serde_json::from_str(v).unwrap();
                    }
                }
                if !sse.event.is_empty() {
                    return sse;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.body.next())
                .await
                .expect("an SSE event within 5 s")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn next_n(&mut self, n: usize) -> Vec<Sse> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }
}

#[tokio::test]
async fn lifecycle_over_rest() {
    let app = app().await;
    let (status, created) = app
        .post(
            "/api/v1/incidents",
            json!({
                "title": "Checkout is slow",
                "severity": "warning",
                "service": "checkout",
                "labels": { "env": "prod" },
                "actor": "carol",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "triggered");
    assert_eq!(created["tenant"], "default");
    assert_eq!(created["service"], "checkout");
    assert_eq!(created["labels"]["env"], "prod");
    let id = created["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/incidents/{id}");

    let (status, body) = app
        .post(&format!("{base}/acknowledge"), json!({ "actor": "alice" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert!(body["acknowledged_at"].is_string());

    let (status, body) = app
        .post(&format!("{base}/acknowledge"), json!({ "actor": "alice" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "conflict");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("already acknowledged"));

    // No body at all: the token is the actor.
    let (status, body) = app
        .call(Method::POST, &format!("{base}/unacknowledge"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "triggered");

    let (status, body) = app
        .post(
            &format!("{base}/snooze"),
            json!({ "duration": "30m", "actor": "dave" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "snoozed");

    let (status, body) = app
        .post(&format!("{base}/resolve"), json!({ "actor": "alice" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert!(body["resolved_at"].is_string());

    let (status, body) = app.post(&format!("{base}/reopen"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "triggered");
    assert_eq!(body["reopen_count"], 1);

    // A hand-made incident has no escalation policy: nothing to fire.
    let (status, body) = app.post(&format!("{base}/escalate"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = app
        .post(
            &format!("{base}/notes"),
            json!({ "text": "rolled back v42", "actor": "erin" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = app
        .post(
            &format!("{base}/assign"),
            json!({ "assignee": "bob", "actor": "carol" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee"], "bob");

    let (status, body) = app
        .call(
            Method::PATCH,
            &base,
            Some(json!({ "severity": "critical", "title": "Checkout is down" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["title"], "Checkout is down");

    let (status, body) = app
        .post(&format!("{base}/assign"), json!({ "assignee": null }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee"], Value::Null);

    let (status, timeline) = app.get(&format!("{base}/timeline")).await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<(String, String)> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let token = "token:s3cr3t".to_string();
    let expected: Vec<(String, String)> = [
        ("created", "carol"),
        ("acknowledged", "alice"),
        ("unacknowledged", &token),
        ("snoozed", "dave"),
        ("resolved", "alice"),
        ("reopened", &token),
        ("note_added", "erin"),
        ("assigned", "carol"),
        ("severity_changed", &token),
        ("title_changed", &token),
        ("assigned", &token),
    ]
    .into_iter()
    .map(|(k, a)| (k.to_string(), a.to_string()))
    .collect();
    assert_eq!(entries, expected);
    assert_eq!(timeline["total"], 11);
    let note = &timeline["entries"][6];
    assert_eq!(note["message"], "note: rolled back v42");

    let (status, incident) = app.get(&base).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(incident["id"], id.as_str());
    assert_eq!(incident["resolved_by"], Value::Null);
    assert_eq!(incident["acknowledged_by"], Value::Null);
    assert_eq!(incident["timeline_total"], 11);
    assert_eq!(incident["seq"], 11);
}

#[tokio::test]
async fn a_standalone_replica_answers_incidents_from_its_own_memory() {
    let app = app().await;
    let id = app.create("Disk full").await;
    for path in [
        format!("/api/v1/incidents/{id}"),
        format!("/api/v1/incidents/{id}/timeline"),
    ] {
        let response = app
            .router
            .clone()
            .oneshot(request(Method::GET, &path, None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["incidentd-source"], "owner", "{path}");
    }
}

#[tokio::test]
async fn unknown_malformed_and_invalid_requests() {
    let app = app().await;
    let id = app.create("Queue backlog").await;
    let unknown = incidentd_actors::model::IncidentId(ulid::Ulid::from_parts(1, 2));

    let (status, body) = app.get(&format!("/api/v1/incidents/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _) = app
        .post(&format!("/api/v1/incidents/{unknown}/resolve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .post(&format!("/api/v1/incidents/{id}/frobnicate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("frobnicate"));
    let (status, body) = app.get("/api/v1/incidents/not-an-id/timeline").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("not-an-id"));

    let invalid = [
        (
            Method::POST,
            "/api/v1/incidents".to_string(),
            json!({ "title": "x", "severity": "fatal" }),
            "fatal",
        ),
        (
            Method::POST,
            "/api/v1/incidents".to_string(),
            json!({ "severity": "info" }),
            "title",
        ),
        (
            Method::POST,
            "/api/v1/incidents".to_string(),
            json!({ "title": "  ", "severity": "info" }),
            "title",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/snooze"),
            json!({ "duration": "30m", "until": "2030-01-01T00:00:00Z" }),
            "until",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/snooze"),
            json!({ "duration": "soon" }),
            "duration",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/snooze"),
            json!({ "until": "2001-01-01T00:00:00Z" }),
            "until",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/notes"),
            json!({ "text": " " }),
            "text",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/assign"),
            json!({}),
            "assignee",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/acknowledge"),
            json!({ "actor": "" }),
            "actor",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{id}/acknowledge"),
            json!({ "who": "x" }),
            "who",
        ),
        (
            Method::PATCH,
            format!("/api/v1/incidents/{id}"),
            json!({ "actor": "x" }),
            "severity",
        ),
    ];
    for (method, uri, body, named) in invalid {
        let (status, answer) = app.call(method.clone(), &uri, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {uri} {body}: {answer}"
        );
        assert_eq!(answer["error"], "invalid");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{uri} {body}: {message}");
    }
    for (query, param) in [
        ("limit=5000", "`limit`"),
        ("status=open", "`status`"),
        ("created_after=yesterday", "`created_after`"),
        ("sort=title", "`sort`"),
    ] {
        let (status, body) = app.get(&format!("/api/v1/incidents?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(body["message"].as_str().unwrap().contains(param), "{body}");
    }
    let (status, body) = app.get("/api/v1/incidents?cursor=zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Valid JSON, but not an object.
    let (status, body) = app.post("/api/v1/incidents", json!("title")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Nothing above changed the incident.
    let (_, timeline) = app.get(&format!("/api/v1/incidents/{id}/timeline")).await;
    assert_eq!(timeline["total"], 1);
}

#[tokio::test]
async fn requests_without_a_token_are_refused() {
    let app = app().await;
    let request = Request::builder()
        .uri("/api/v1/incidents")
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Incident `n`: service db, web or none by `n % 3`; severity by `n % 4`;
/// tenant by parity.
fn alert(n: usize) -> Alert {
    let svc = ["db", "web", "other"][n % 3];
    let mut alert = Alert::firing(Labels::from([
        ("alertname".into(), "HostDown".into()),
        ("instance".into(), format!("i{n}").into()),
        ("svc".into(), svc.into()),
    ]));
    alert.severity = Severity::ALL[n % 4];
    alert.tenant = if n % 2 == 0 { "acme" } else { "globex" }.into();
    alert.summary = format!("Host i{n} is down").into();
    alert
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn list_filters_sorts_and_pages_300_incidents() {
    let app = app().await;
    for batch in (0..300).collect::<Vec<_>>().chunks(50) {
        app.state
            .engine
            .submit(batch.iter().map(|n| alert(*n)).collect())
            .await
            .unwrap();
    }
    let summaries: Vec<Arc<IncidentSummary>> = app.state.engine.read_model().all();
    assert_eq!(summaries.len(), 300);

    // Every incident exactly once, in (created, id) descending order.
    let mut expected: Vec<_> = summaries.iter().map(|s| (s.created_at, s.id)).collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.iter().map(|(_, id)| id.to_string()).collect();
    let mut seen = Vec::new();
    let mut uri = "/api/v1/incidents?limit=70".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = app.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => uri = format!("/api/v1/incidents?limit=70&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, expected);

    // Severity ascending: info first; within a severity, by id.
    let (_, page) = app
        .get("/api/v1/incidents?sort=severity&order=asc&limit=1000")
        .await;
    let severities: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities.len(), 300);
    assert_eq!(severities[0], "info");
    assert_eq!(severities[299], "critical");
    assert!(severities.windows(2).all(|w| {
        let rank = |s: &str| {
            ["info", "warning", "error", "critical"]
                .iter()
                .position(|x| *x == s)
        };
        rank(w[0]) <= rank(w[1])
    }));

    // service db: n % 3 == 0; critical: n % 4 == 0; acme: even. So n % 12 == 0.
    let (_, page) = app
        .get("/api/v1/incidents?service=db&severity=critical&tenant=acme&limit=1000")
        .await;
    let titles: HashSet<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_string())
        .collect();
    let wanted: HashSet<String> = (0..300)
        .filter(|n| n % 12 == 0)
        .map(|n| format!("Host i{n} is down"))
        .collect();
    assert_eq!(titles, wanted);
    assert_eq!(page["items"][0]["team"], "dba");

    let (_, page) = app
        .get("/api/v1/incidents?label=instance=i7&label=svc=web")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["title"], "Host i7 is down");
    assert_eq!(page["next"], Value::Null);

    let (_, page) = app.get("/api/v1/incidents?q=HOST%20I7&limit=1000").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 11); // i7, i70..i79

    // Every incident's first escalation step is due as it opens, and firing
    // it updates the incident: let those fire (the paused clock moves on
    // only once they have), then resolve one a second later. It alone is
    // found by status and resolved time, and it is the latest updated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let target = summaries
        .iter()
        .find(|s| &*s.title == "Host i5 is down")
        .unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{}/resolve", target.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app
        .get("/api/v1/incidents?status=resolved&resolved_after=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(ids(&page), vec![target.id.to_string()]);
    let (_, page) = app
        .get("/api/v1/incidents?resolved_before=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    let (_, page) = app.get("/api/v1/incidents?sort=updated&limit=1").await;
    assert_eq!(ids(&page), vec![target.id.to_string()]);

    // Alert incidents carry the route's policy: escalating fires step 1 now.
    let open = summaries
        .iter()
        .find(|s| &*s.title == "Host i6 is down")
        .unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/incidents/{}/escalate", open.id),
            json!({ "actor": "oncall" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, timeline) = app
        .get(&format!("/api/v1/incidents/{}/timeline", open.id))
        .await;
    let last = timeline["entries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "escalated");
    assert_eq!(last["actor"], "oncall");
}

#[tokio::test]
async fn sse_delivers_filters_and_resumes() {
    let app = app().await;
    let mut all = app.events("", None).await;
    let mut resolved_only = app
        .events("?type=resolved,created&tenant=default", None)
        .await;
    let first = app.create("First").await;
    let second = app.create("Second").await;
    app.post(&format!("/api/v1/incidents/{first}/acknowledge"), json!({}))
        .await;
    app.post(&format!("/api/v1/incidents/{first}/resolve"), json!({}))
        .await;

    let events = all.next_n(4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["created", "created", "acknowledged", "resolved"]
    );
    assert_eq!(events[0].id.as_deref(), Some(format!("{first}-1").as_str()));
    assert_eq!(events[0].data["incident_id"], first.as_str());
    assert_eq!(events[0].data["incident"]["title"], "First");
    assert_eq!(events[1].data["incident_id"], second.as_str());
    assert_eq!(events[2].data["actor"], "token:s3cr3t");
    assert_eq!(events[3].data["seq"], 3);

    let filtered = resolved_only.next_n(3).await;
    let kinds: Vec<&str> = filtered.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, vec!["created", "created", "resolved"]);

    // Reconnecting after the first event replays the three after it.
    let mut resumed = app.events("", Some(&format!("{first}-1"))).await;
    let replayed: Vec<Option<String>> = resumed.next_n(3).await.into_iter().map(|e| e.id).collect();
    assert_eq!(
        replayed,
        vec![
            Some(format!("{second}-1")),
            Some(format!("{first}-2")),
            Some(format!("{first}-3")),
        ]
    );
    // Then live ones; the query parameter works when the header is absent.
    let mut by_query = app.events(&format!("?last_event_id={first}-3"), None).await;
    app.post(
        &format!("/api/v1/incidents/{second}/notes"),
        json!({ "text": "hi" }),
    )
    .await;
    let live = resumed.next().await;
    assert_eq!(live.event, "note_added");
    assert_eq!(live.id, Some(format!("{second}-2")));
    assert_eq!(by_query.next().await.id, Some(format!("{second}-2")));
}

#[tokio::test]
async fn sse_says_reset_when_events_may_be_missed() {
    let app = app().await;
    let first = app.create("Zero").await;
    // The bus keeps 50 events: push the first one out of it.
    for n in 0..60 {
        app.create(&format!("Filler {n}")).await;
    }
    let mut stream = app.events("", Some(&format!("{first}-1"))).await;
    let reset = stream.next().await;
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.id, None);
    assert!(reset.data["message"]
        .as_str()
        .unwrap()
        .contains("may have been missed"));
    let last = app.create("After").await;
    let live = stream.next().await;
    assert_eq!(live.id, Some(format!("{last}-1")));

    // A stream nobody reads falls behind the live channel (50 events or a
    // little more): it is told how far, then continues with what is left.
    let mut slow = app.events("", None).await;
    for n in 0..100 {
        app.create(&format!("Burst {n}")).await;
    }
    let lagged = slow.next().await;
    assert_eq!(lagged.event, "reset");
    let message = lagged.data["message"].as_str().unwrap();
    let skipped: usize = message
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no count in {message:?}"));
    assert!((1..=50).contains(&skipped), "{message}");
    let next = slow.next().await;
    assert_eq!(next.event, "created");
    assert_eq!(next.data["incident"]["title"], format!("Burst {skipped}"));
}

#[tokio::test]
async fn sse_rejects_unknown_filters() {
    let app = app().await;
    let (status, body) = app.get("/api/v1/events?type=exploded").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["message"].as_str().unwrap().contains("`type`"));
}

#[tokio::test]
async fn openapi_lists_every_path_and_docs_are_served() {
    let app = app().await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths: HashSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/timeline",
        "/api/v1/incidents/{id}/{action}",
        "/api/v1/incidents/{id}/snooze",
        "/api/v1/incidents/{id}/assign",
        "/api/v1/incidents/{id}/notes",
        "/api/v1/events",
        "/api/v1/schemas",
        "/api/v1/schemas/{name}",
        "/api/v1/subscriptions",
        "/api/v1/subscriptions/{id}",
        "/api/v1/subscriptions/{id}/deliveries",
        "/api/v2/alerts",
        "/api/v1/webhooks/alertmanager",
        "/api/v1/alerts",
        "/v2/enqueue",
    ]
    .into_iter()
    .collect();
    assert_eq!(paths, expected);
    let incidents = &doc["paths"]["/api/v1/incidents"];
    assert!(incidents["get"].is_object() && incidents["post"].is_object());
    assert!(doc["paths"]["/api/v1/incidents/{id}"]["patch"].is_object());
    let actions = &schemas_of(&doc)["Lifecycle"]["enum"];
    assert_eq!(
        actions,
        &json!([
            "acknowledge",
            "unacknowledge",
            "resolve",
            "reopen",
            "escalate"
        ])
    );
    let schemas = schemas_of(&doc);
    assert_eq!(schemas["Timestamp"]["type"], "string");
    assert_eq!(schemas["Timestamp"]["format"], "date-time");
    assert_eq!(schemas["IncidentId"]["type"], "string");
    for name in [
        "IncidentSummary",
        "Incident",
        "IncidentEvent",
        "IncidentPage",
        "ErrorBody",
        "NewSubscription",
        "SubscriptionView",
        "Deliveries",
        "DeadLetter",
        "EventFilter",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let response = app
        .router
        .clone()
        .oneshot(request(Method::GET, "/docs/", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&html).contains("swagger"));
}

fn schemas_of(doc: &Value) -> &Value {
    &doc["components"]["schemas"]
}

#[tokio::test]
async fn event_schemas_are_routed_with_the_rest_of_the_api() {
    let app = app().await;
    let (status, list) = app.get("/api/v1/schemas").await;
    assert_eq!(status, StatusCode::OK);
    let created = &list["schemas"][1];
    let (status, schema) = app.get(created["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(schema["title"], created["type"]);
    let (status, error) = app.get("/api/v1/schemas/nope.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "not_found");
}

#[tokio::test]
async fn subscriptions_are_created_listed_and_deleted_without_showing_the_secret() {
    let app = app().await;
    let (status, body) = app
        .post(
            "/api/v1/subscriptions",
            json!({ "url": "ftp://hooks.example/" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("url"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/subscriptions",
            json!({ "url": "http://hooks.example/", "filters": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("filters"),
        "{body}"
    );

    let (status, created) = app
        .post(
            "/api/v1/subscriptions",
            json!({
                "url": "http://hooks.example/",
                "secret": "s3cret",
                "filter": { "severities": ["critical"], "types": ["created"] },
                "description": "pager bridge",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["has_secret"], true);
    assert!(created.get("secret").is_none());
    assert_eq!(created["filter"]["types"], json!(["created"]));
    let path = format!("/api/v1/subscriptions/{}", created["id"].as_str().unwrap());

    assert_eq!(app.get("/api/v1/subscriptions").await.1, json!([created]));
    assert_eq!(app.get(&path).await.1, created);
    let (status, deliveries) = app.get(&format!("{path}/deliveries")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deliveries["dead_letters"], json!([]));
    assert_eq!(deliveries["counts"]["delivered"], 0);

    assert_eq!(
        app.call(Method::DELETE, &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/subscriptions/nope").await.0,
        StatusCode::BAD_REQUEST
    );
}
