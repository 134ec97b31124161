//! The results: a summary table on stdout, `result.json` and `plot.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::generate::GenStats;
use crate::scenario::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub run_id: String,
    pub started_at: String,
    pub scenario: Scenario,
    /// From the first send to the last acknowledgement.
    pub send_seconds: f64,
    pub alerts: Alerts,
    pub generated: GenStats,
    /// Acknowledged alerts per second over `send_seconds` (HTTP: stored by
    /// the service; Kafka: acknowledged by the broker).
    pub throughput_alerts_per_s: f64,
    /// Kafka mode with the keyed-topic sampler: alerts in durable state.
    pub durable: Option<Durable>,
    /// Events the service's broker topics acknowledged during the run
    /// (send phase and drain), when it publishes to any.
    pub events_published: Option<EventsPublished>,
    /// From sending a group's first alert to its `created` event on SSE.
    pub latency_ms: Latency,
    /// From send to the acknowledgement of each request (HTTP: stored by
    /// the service) or message (Kafka: acknowledged by the broker).
    pub ack_latency_ms: Latency,
    pub groups: Groups,
    pub sse: Sse,
    /// Failed requests (or messages) by kind: http_<status>, timeout,
    /// connect, body, request, kafka_<code>.
    pub errors: BTreeMap<String, u64>,
    pub series: Series,
}

#[derive(Debug, Serialize)]
pub struct Alerts {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub struct Durable {
    pub alerts: u64,
    /// From the first send until the durable count reached the acked
    /// count (or the last sample, if it never did).
    pub seconds: f64,
    pub complete: bool,
    pub alerts_per_s: f64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct EventsPublished {
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Groups {
    pub sent: u64,
    pub observed: u64,
    pub missing: u64,
}

#[derive(Debug, Serialize)]
pub struct Sse {
    pub unmatched_created_events: u64,
    pub resets: u64,
    pub reconnects: u64,
}

#[derive(Debug, Serialize)]
pub struct Series {
    pub acked_per_second: Vec<u64>,
    /// (seconds since start, alerts durably applied so far).
    pub durable: Vec<(f64, u64)>,
    /// (seconds since start at send, latency ms), one per observed group.
    pub latency: Vec<(f64, f64)>,
}

/// Percentiles of latencies in milliseconds, at microsecond resolution.
pub fn latency(samples_ms: &[f64]) -> Latency {
    if samples_ms.is_empty() {
        return Latency::default();
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for ms in samples_ms {
        histogram.saturating_record(((ms * 1e3).round() as u64).max(1));
    }
    let at = |q: f64| histogram.value_at_quantile(q) as f64 / 1e3;
    Latency {
        count: histogram.len(),
        mean: histogram.mean() / 1e3,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: histogram.max() as f64 / 1e3,
    }
}

impl Report {
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "run {}  mode {}  target {}",
            self.run_id,
            self.scenario.mode.as_str(),
            self.scenario.target
        );
        let _ = writeln!(
            out,
            "{:<28} {:>14}",
            "send phase (s)",
            format!("{:.2}", self.send_seconds)
        );
        let _ = writeln!(out, "{:<28} {:>14}", "alerts sent", self.alerts.sent);
        let _ = writeln!(
            out,
            "{:<28} {:>14}",
            "alerts acknowledged", self.alerts.acked
        );
        let _ = writeln!(out, "{:<28} {:>14}", "alerts failed", self.alerts.failed);
        let _ = writeln!(
            out,
            "{:<28} {:>14}",
            "requests/messages", self.alerts.requests
        );
        let _ = writeln!(
            out,
            "{:<28} {:>14.0}",
            "throughput (acked alerts/s)", self.throughput_alerts_per_s
        );
        if let Some(d) = &self.durable {
            let _ = writeln!(
                out,
                "{:<28} {:>14}",
                "durable alerts",
                format!(
                    "{}{}",
                    d.alerts,
                    if d.complete { "" } else { " (incomplete)" }
                )
            );
            let _ = writeln!(out, "{:<28} {:>14.0}", "durable alerts/s", d.alerts_per_s);
        }
        if let Some(e) = &self.events_published {
            let _ = writeln!(out, "{:<28} {:>14}", "events to broker topics", e.events);
            let _ = writeln!(
                out,
                "{:<28} {:>14.0}",
                "events/s (send + drain)", e.events_per_s
            );
        }
        let _ = writeln!(
            out,
            "{:<28} {:>14}",
            "groups sent / observed",
            format!("{} / {}", self.groups.sent, self.groups.observed)
        );
        let _ = writeln!(out, "latency to `created` (ms): n={} mean={:.1} p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} max={:.1}", l.count, l.mean, l.p50, l.p90, l.p99, l.p999, l.max);
        let a = &self.ack_latency_ms;
        let _ = writeln!(
            out,
            "ack latency (ms): n={} mean={:.1} p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} max={:.1}",
            a.count, a.mean, a.p50, a.p90, a.p99, a.p999, a.max
        );
        let _ = writeln!(
            out,
            "sse: unmatched={} resets={} reconnects={}",
            self.sse.unmatched_created_events, self.sse.resets, self.sse.reconnects
        );
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "errors: {}", list.join(" "));
        }
        out
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("plot.svg"), self.svg())?;
        Ok(())
    }

    /// Two panels sharing the time axis: latency of each observed group
    /// (dots, by send time), and alerts per second (acknowledged, and
    /// durable in Kafka mode).
    pub fn svg(&self) -> String {
        const W: f64 = 900.0;
        const PANEL: f64 = 220.0;
        const LEFT: f64 = 70.0;
        const RIGHT: f64 = 20.0;
        let top1 = 40.0;
        let top2 = top1 + PANEL + 60.0;
        let height = top2 + PANEL + 50.0;
        let acked: Vec<(f64, f64)> = self
            .series
            .acked_per_second
            .iter()
            .enumerate()
            .map(|(s, n)| (s as f64 + 0.5, *n as f64))
            .collect();
        let durable: Vec<(f64, f64)> = self
            .series
            .durable
            .windows(2)
            .map(|w| {
                (
                    (w[0].0 + w[1].0) / 2.0,
                    (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0).max(1e-3),
                )
            })
            .collect();
        let t_max = self
            .series
            .latency
            .iter()
            .map(|p| p.0)
            .chain(acked.iter().map(|p| p.0))
            .chain(durable.iter().map(|p| p.0))
            .fold(1.0_f64, f64::max)
            .ceil();
        let lat_max = nice(self.series.latency.iter().map(|p| p.1).fold(1.0, f64::max));
        let rate_max = nice(
            acked
                .iter()
                .chain(&durable)
                .map(|p| p.1)
                .fold(1.0, f64::max),
        );
        let x = |t: f64| LEFT + t / t_max * (W - LEFT - RIGHT);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="20" font-size="14">incidentd-load {} — {} — p50 {:.1} ms, p99 {:.1} ms, {:.0} alerts/s</text>"#,
            self.run_id,
            self.scenario.mode.as_str(),
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.throughput_alerts_per_s
        );
        for (top, max, label) in [
            (top1, lat_max, "latency to created event (ms)"),
            (top2, rate_max, "alerts/s"),
        ] {
            let _ = writeln!(
                s,
                r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL}" fill="none" stroke="#888"/>"##,
                W - LEFT - RIGHT
            );
            let _ = writeln!(s, r#"<text x="{LEFT}" y="{}">{label}</text>"#, top - 6.0);
            for i in 0..=4 {
                let v = max * i as f64 / 4.0;
                let y = top + PANEL - PANEL * i as f64 / 4.0;
                let _ = writeln!(
                    s,
                    r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                    W - RIGHT,
                    LEFT - 4.0,
                    y + 4.0,
                    fmt_num(v)
                );
            }
            for i in 0..=10 {
                let t = t_max * i as f64 / 10.0;
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle">{}s</text>"#,
                    x(t),
                    top + PANEL + 15.0,
                    fmt_num(t)
                );
            }
        }
        let y_lat = |v: f64| top1 + PANEL - (v / lat_max).min(1.0) * PANEL;
        for (t, ms) in &self.series.latency {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#1f77b4" fill-opacity="0.6"/>"##,
                x(*t),
                y_lat(*ms)
            );
        }
        let y_rate = |v: f64| top2 + PANEL - (v / rate_max).min(1.0) * PANEL;
        let polyline = |points: &[(f64, f64)], color: &str| {
            let pts: Vec<String> = points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y_rate(*v)))
                .collect();
            format!(
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                pts.join(" ")
            )
        };
        let _ = writeln!(s, "{}", polyline(&acked, "#2ca02c"));
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#2ca02c" text-anchor="end">acknowledged</text>"##,
            W - RIGHT - 4.0,
            top2 + 14.0
        );
        if !durable.is_empty() {
            let _ = writeln!(s, "{}", polyline(&durable, "#d62728"));
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#d62728" text-anchor="end">durable (keyed-topic commits)</text>"##,
                W - RIGHT - 4.0,
                top2 + 28.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A round upper bound for an axis.
fn nice(max: f64) -> f64 {
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn fmt_num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let samples: Vec<f64> = (1..=1000).map(|i| i as f64).collect();
        let l = latency(&samples);
        assert_eq!(l.count, 1000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002;
        assert!(close(l.p50, 500.0), "{l:?}");
        assert!(close(l.p90, 900.0), "{l:?}");
        assert!(close(l.p99, 990.0), "{l:?}");
        assert!(close(l.p999, 999.0), "{l:?}");
        assert!(close(l.max, 1000.0), "{l:?}");
        assert!(close(l.mean, 500.5), "{l:?}");
        assert_eq!(latency(&[]), Latency::default());
    }

    #[test]
    fn axis_bounds_are_round() {
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(130.0), 200.0);
        assert_eq!(nice(24_000.0), 25_000.0);
    }
}
