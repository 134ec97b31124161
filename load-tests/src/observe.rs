//! Reads the service's SSE stream (`GET /api/v1/events?type=created`) and
//! matches each `created` event of this run to the group whose first alert
//! opened it.
//!
//! The stream sends `id: <incident>-<seq>`, `event: <kind>` and
//! `data: <IncidentEvent JSON>` lines, a blank line after each event, `:`
//! keep-alive comments, and an `event: reset` (no id) when this client fell
//! behind and events were skipped. Filtering to `created` on the server
//! keeps the stream small however many alerts are sent. On a broken
//! connection it reconnects with `Last-Event-ID`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::{Client, Response};
use serde_json::Value;
use tokio::sync::watch;

use crate::record::Recorder;

pub struct Observer {
    client: Client,
    url: String,
    prefix: String,
    recorder: Arc<Recorder>,
    last_id: Option<String>,
}

impl Observer {
    /// Connects, so that nothing sent afterwards is missed.
    pub async fn connect(
        base: &str,
        prefix: String,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<(Observer, Response)> {
        let client = Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let mut observer = Observer {
            client,
            url: format!("{base}/api/v1/events?type=created"),
            prefix,
            recorder,
            last_id: None,
        };
        let response = observer.open().await?;
        Ok((observer, response))
    }

    async fn open(&mut self) -> anyhow::Result<Response> {
        let mut request = self
            .client
            .get(&self.url)
            .header("accept", "text/event-stream");
        if let Some(id) = &self.last_id {
            request = request.header("last-event-id", id);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot open {}", self.url))?;
        if !response.status().is_success() {
            bail!("{} answered {}", self.url, response.status());
        }
        Ok(response)
    }

    /// Reads until `stop` turns true.
    pub async fn run(mut self, mut response: Response, mut stop: watch::Receiver<bool>) {
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                chunk = response.chunk() => chunk,
            };
            match chunk {
                Ok(Some(bytes)) => {
                    let at = Instant::now();
                    for event in parser.push(&bytes) {
                        self.handle(event, at);
                    }
                }
                Ok(None) | Err(_) => {
                    self.recorder.reconnects.fetch_add(1, Ordering::Relaxed);
                    parser = SseParser::default();
                    loop {
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        }
                        if let Ok(r) = self.open().await {
                            response = r;
                            break;
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: SseEvent, at: Instant) {
        if event.id.is_some() {
            self.last_id = event.id.clone();
        }
        match event.kind.as_str() {
            "reset" => {
                self.recorder.resets.fetch_add(1, Ordering::Relaxed);
            }
            "created" => {
                let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                if let Some(key) = incident_key(&data, &self.prefix) {
                    self.recorder.observed(&key, at);
                }
            }
            _ => {}
        }
    }
}

/// The alertname of the incident an event is about, if it is one of this
/// run's: the `alertname` label, else the `alertname="..."` part of the
/// group key (`root:{alertname="X"}` with `group_by = ["alertname"]`).
/// `event` is the SSE event's data or a CloudEvent's `data`: both carry
/// `incident` and `group_key`.
pub fn incident_key(event: &Value, prefix: &str) -> Option<String> {
    if let Some(name) = event["incident"]["labels"]["alertname"].as_str() {
        if name.starts_with(prefix) {
            return Some(name.to_string());
        }
    }
    let group_key = event["group_key"].as_str()?;
    let start = group_key.find("alertname=\"")? + "alertname=\"".len();
    let rest = &group_key[start..];
    let name = &rest[..rest.find('"')?];
    name.starts_with(prefix).then(|| name.to_string())
}

#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub kind: String,
    pub data: String,
}

/// Incremental `text/event-stream` parser.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut consumed = 0;
        while let Some(end) = self.buffer[consumed..].iter().position(|&b| b == b'\n') {
            let line = &self.buffer[consumed..consumed + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            consumed += end + 1;
            if line.is_empty() {
                if self.has_data || !self.current.kind.is_empty() {
                    events.push(std::mem::take(&mut self.current));
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.kind = value.to_string(),
                "id" => self.current.id = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        self.buffer.drain(..consumed);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = SseParser::default();
        let text = ": keep-alive\n\nid: 01A-1\nevent: created\ndata: {\"a\":1}\n\nevent: reset\ndata: {}\n\n";
        let (a, b) = text.split_at(30);
        let mut events = parser.push(a.as_bytes());
        events.extend(parser.push(b.as_bytes()));
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("01A-1".into()),
                    kind: "created".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    kind: "reset".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn finds_the_alertname() {
        let by_label = r#"{"group_key":"x","incident":{"labels":{"alertname":"load-r-1"}}}"#;
        let key = |data: &str| incident_key(&serde_json::from_str(data).unwrap(), "load-r-");
        assert_eq!(key(by_label).as_deref(), Some("load-r-1"));
        let by_key = r#"{"group_key":"root:{alertname=\"load-r-2\"}","incident":{"labels":{}}}"#;
        assert_eq!(key(by_key).as_deref(), Some("load-r-2"));
        let other = r#"{"group_key":"root:{alertname=\"Other\"}","incident":{"labels":{}}}"#;
        assert_eq!(key(other), None);
    }
}
