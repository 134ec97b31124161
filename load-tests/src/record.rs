//! What a run records while it runs, shared by the senders, the SSE
//! observer and the progress display.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub struct Recorder {
    pub start: Instant,
    /// Incident key (see `Generator::incident_key`) -> when the request or
    /// message holding the group's first alert was started.
    pending: Mutex<HashMap<String, Instant>>,
    /// (seconds since start at send, latency in ms), one per observed group.
    latencies: Mutex<Vec<(f64, f64)>>,
    /// Milliseconds from send to acknowledgement, per acknowledged request
    /// or message.
    ack_latencies: Mutex<Vec<f64>>,
    /// Alerts acknowledged by the service (HTTP 2xx) or the broker, per second.
    acked_per_second: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    last_ack: Mutex<Option<Instant>>,
    /// (seconds since start, alerts durably applied), Kafka mode only.
    durable: Mutex<Vec<(f64, u64)>>,
    pub sent_alerts: AtomicU64,
    pub acked_alerts: AtomicU64,
    pub failed_alerts: AtomicU64,
    pub requests: AtomicU64,
    pub groups_sent: AtomicU64,
    pub groups_observed: AtomicU64,
    /// `created` events of this run that matched no pending group (e.g.
    /// PagerDuty dedup keys other than a group's first, or repeats).
    pub unmatched_events: AtomicU64,
    /// `reset` events: the stream skipped events.
    pub resets: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            pending: Mutex::default(),
            latencies: Mutex::default(),
            ack_latencies: Mutex::default(),
            acked_per_second: Mutex::default(),
            errors: Mutex::default(),
            last_ack: Mutex::default(),
            durable: Mutex::default(),
            sent_alerts: AtomicU64::new(0),
            acked_alerts: AtomicU64::new(0),
            failed_alerts: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            groups_sent: AtomicU64::new(0),
            groups_observed: AtomicU64::new(0),
            unmatched_events: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    pub fn elapsed_at(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    /// A request or message with `alerts` alerts, opening these groups, is
    /// about to be sent.
    pub fn sending(&self, alerts: usize, opening: Vec<String>, at: Instant) {
        self.sent_alerts.fetch_add(alerts as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !opening.is_empty() {
            self.groups_sent
                .fetch_add(opening.len() as u64, Ordering::Relaxed);
            let mut pending = self.pending.lock().unwrap();
            for key in opening {
                pending.insert(key, at);
            }
        }
    }

    /// A request or message sent at `sent` was acknowledged at `at`.
    pub fn acked(&self, alerts: usize, sent: Instant, at: Instant) {
        self.acked_alerts
            .fetch_add(alerts as u64, Ordering::Relaxed);
        self.ack_latencies
            .lock()
            .unwrap()
            .push(at.saturating_duration_since(sent).as_secs_f64() * 1e3);
        let second = self.elapsed_at(at) as usize;
        let mut per_second = self.acked_per_second.lock().unwrap();
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += alerts as u64;
        let mut last = self.last_ack.lock().unwrap();
        if last.is_none_or(|l| l < at) {
            *last = Some(at);
        }
    }

    pub fn failed(&self, kind: &str, alerts: usize) {
        self.failed_alerts
            .fetch_add(alerts as u64, Ordering::Relaxed);
        *self
            .errors
            .lock()
            .unwrap()
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// A `created` event for `key` arrived at `at`.
    pub fn observed(&self, key: &str, at: Instant) {
        let sent = self.pending.lock().unwrap().remove(key);
        match sent {
            Some(sent) => {
                self.groups_observed.fetch_add(1, Ordering::Relaxed);
                let ms = at.saturating_duration_since(sent).as_secs_f64() * 1e3;
                self.latencies
                    .lock()
                    .unwrap()
                    .push((self.elapsed_at(sent), ms));
            }
            None => {
                self.unmatched_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn pending_groups(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    pub fn durable_sample(&self, at: Instant, alerts: u64) {
        self.durable
            .lock()
            .unwrap()
            .push((self.elapsed_at(at), alerts));
    }

    pub fn last_durable(&self) -> Option<(f64, u64)> {
        self.durable.lock().unwrap().last().copied()
    }

    pub fn last_ack(&self) -> Option<Instant> {
        *self.last_ack.lock().unwrap()
    }

    pub fn latencies(&self) -> Vec<(f64, f64)> {
        self.latencies.lock().unwrap().clone()
    }

    pub fn ack_latencies(&self) -> Vec<f64> {
        self.ack_latencies.lock().unwrap().clone()
    }

    pub fn acked_per_second(&self) -> Vec<u64> {
        self.acked_per_second.lock().unwrap().clone()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    pub fn durable(&self) -> Vec<(f64, u64)> {
        self.durable.lock().unwrap().clone()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
