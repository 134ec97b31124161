//! `GET /events`: incident events as Server-Sent Events, live from the
//! event bus, resumable with `Last-Event-ID` while the bus still holds the
//! client's last event.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use incidentd_actors::model::IncidentEvent;
use serde_json::json;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::error::{ApiError, ErrorBody};
use super::stream_filter::StreamQuery;
use crate::bus::{Resume, SharedEvent};
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream checks whether the server is shutting down;
/// graceful shutdown waits for every response, and a stream never ends
/// by itself.
const SHUTDOWN_CHECK: Duration = Duration::from_secs(1);

/// Incident events as they happen.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
        ("last_event_id" = Option<String>, Query, description = "Same as the header, for clients that cannot set it"),
        ("tenant" = Option<String>, Query, description = "Only this tenant's incidents"),
        ("service" = Option<String>, Query, description = "Only this service's incidents"),
        ("severity" = Option<String>, Query, description = "Only incidents of these severities; repeatable or comma-separated"),
        ("type" = Option<String>, Query, description = "Only these event kinds, e.g. created,resolved; repeatable or comma-separated"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`. Each event has `id` (resume point), `event` (the kind, e.g. `created`) and `data` (the event as JSON). An event named `reset` says events may have been missed (resume point gone, or the client fell behind): reload state with `GET /incidents`. Keep-alive comments every 15 s.",
            content_type = "text/event-stream", body = IncidentEvent),
        (status = 422, description = "A filter is unknown or invalid; the message names it", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = StreamQuery::parse(&pairs)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.last_event_id.clone());
    let (live, resume) = state.bus.subscribe(last_event_id.as_deref());
    let replayed: Vec<Event> = match resume {
        Resume::From(events) => events
            .iter()
            .filter(|e| query.matches(e))
            .map(|e| sse_event(e))
            .collect(),
        Resume::Lost => vec![reset(
            "the last event you saw is no longer buffered; events may have been missed",
        )],
    };
    let live = BroadcastStream::new(live).filter_map(move |item| {
        let event = match item {
            Ok(event) => query.matches(&event).then(|| sse_event(&event)),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => Some(reset(&format!(
                "this stream fell {skipped} events behind and skipped them"
            ))),
        };
        futures::future::ready(event)
    });
    let shutting_down = async move {
        while !state.is_shutting_down() {
            tokio::time::sleep(SHUTDOWN_CHECK).await;
        }
    };
    let stream = stream::iter(replayed)
        .chain(live)
        .take_until(shutting_down)
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The event's JSON is made once for every client (see [`SharedEvent`]).
fn sse_event(event: &SharedEvent) -> Event {
    Event::default()
        .id(&event.id)
        .event(event.kind.as_str())
        .data(event.json())
}

/// Tells the client its view may be incomplete. It has no id, so the
/// client's resume point stays that of the last real event.
fn reset(why: &str) -> Event {
    Event::default().event("reset").data(
        json!({
            "message": format!("{why}; reload incidents with GET /api/v1/incidents"),
        })
        .to_string(),
    )
}
