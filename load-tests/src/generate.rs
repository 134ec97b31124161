//! Alert generation: which alert comes next, and its bytes in each wire
//! format.
//!
//! Alertnames are `load-<run id>-<group>`, so every run's groups are new
//! incidents. Groups are opened evenly over the send phase (the caller
//! passes the elapsed fraction), so the alert that opens a group, the one
//! whose latency is measured, occurs all through the run. Every other alert
//! is, by the scenario's ratios, a resolve of a sent fingerprint, a
//! duplicate of one, or a new fingerprint of an open group.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::scenario::{Mode, Scenario};

/// xorshift64*: small, fast, seedable; good enough for picking alerts.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Zero is xorshift's fixed point; spread the seed with splitmix64.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One alert to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertSpec {
    pub group: u64,
    pub instance: u64,
    pub resolved: bool,
    /// The first alert of its group: it opens the incident.
    pub opens_group: bool,
}

/// What was generated, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenStats {
    pub groups_opened: u64,
    pub new_fingerprints: u64,
    /// Firing repeats of a sent fingerprint (including new-fingerprint
    /// draws on a group whose fingerprints were all used).
    pub duplicates: u64,
    pub resolved: u64,
}

/// The scenario's shape of the alert stream (its fields of the same names).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub groups: u64,
    pub fingerprints_per_group: u64,
    pub group_run: u64,
    pub duplicate_ratio: f64,
    pub resolve_ratio: f64,
}

impl Shape {
    pub fn of(scenario: &Scenario) -> Shape {
        Shape {
            groups: scenario.groups,
            fingerprints_per_group: scenario.fingerprints_per_group,
            group_run: scenario.group_run,
            duplicate_ratio: scenario.duplicate_ratio,
            resolve_ratio: scenario.resolve_ratio,
        }
    }
}

pub struct Generator {
    run_id: String,
    shape: Shape,
    rng: Rng,
    /// Per opened group: fingerprints sent so far (instances 0..n).
    sent: Vec<u64>,
    /// The group of the current run and how many alerts it still gets.
    run: (u64, u64),
    pub stats: GenStats,
}

impl Generator {
    pub fn new(run_id: &str, shape: Shape, seed: u64) -> Generator {
        Generator {
            run_id: run_id.to_string(),
            shape,
            rng: Rng::new(seed),
            sent: Vec::new(),
            run: (0, 0),
            stats: GenStats::default(),
        }
    }

    /// `load-<run id>-`: every alertname of this run starts with it.
    pub fn prefix(&self) -> String {
        format!("load-{}-", self.run_id)
    }

    pub fn alertname(&self, group: u64) -> String {
        format!("load-{}-{group}", self.run_id)
    }

    /// The alertname the service gives the incident a group's first alert
    /// opens: the alertname, except for PagerDuty, where the service names
    /// each alert by its dedup key.
    pub fn incident_key(&self, mode: Mode, group: u64) -> String {
        match mode {
            Mode::Pagerduty => dedup_key(&self.alertname(group), 0),
            _ => self.alertname(group),
        }
    }

    /// The next alert; `progress` is the elapsed fraction of the send phase.
    pub fn next(&mut self, progress: f64) -> AlertSpec {
        let groups = self.shape.groups;
        let due = ((groups as f64 * progress.clamp(0.0, 1.0)).ceil() as u64).clamp(1, groups);
        let opened = self.sent.len() as u64;
        if opened < due {
            self.sent.push(1);
            self.stats.groups_opened += 1;
            self.stats.new_fingerprints += 1;
            return AlertSpec {
                group: opened,
                instance: 0,
                resolved: false,
                opens_group: true,
            };
        }
        self.run = match self.run {
            (group, left) if left > 0 => (group, left - 1),
            _ => (self.rng.below(opened), self.shape.group_run - 1),
        };
        let group = self.run.0;
        let sent = self.sent[group as usize];
        let draw = self.rng.next_f64();
        let resolve_ratio = self.shape.resolve_ratio;
        if draw < resolve_ratio + self.shape.duplicate_ratio {
            let resolved = draw < resolve_ratio;
            if resolved {
                self.stats.resolved += 1;
            } else {
                self.stats.duplicates += 1;
            }
            return AlertSpec {
                group,
                instance: self.rng.below(sent),
                resolved,
                opens_group: false,
            };
        }
        let instance = if sent < self.shape.fingerprints_per_group {
            self.sent[group as usize] += 1;
            self.stats.new_fingerprints += 1;
            sent
        } else {
            self.stats.duplicates += 1;
            self.rng.below(sent)
        };
        AlertSpec {
            group,
            instance,
            resolved: false,
            opens_group: false,
        }
    }
}

pub fn dedup_key(alertname: &str, instance: u64) -> String {
    format!("{alertname}-{instance}")
}

fn labels(alertname: &str, spec: &AlertSpec, severity: &str) -> Value {
    json!({
        "alertname": alertname,
        "instance": format!("instance-{}", spec.instance),
        "severity": severity,
        "job": "incidentd-load",
    })
}

/// Alertmanager v2 postable alerts (a JSON array). A resolved alert has an
/// `endsAt` in the past; a firing one none (the service's resolve_timeout).
pub fn alertmanager_v2(gen: &Generator, specs: &[AlertSpec], severity: &str) -> Vec<u8> {
    let now = chrono::Utc::now();
    let items: Vec<Value> = specs
        .iter()
        .map(|spec| {
            let name = gen.alertname(spec.group);
            let mut alert = json!({
                "labels": labels(&name, spec, severity),
                "annotations": {"summary": format!("{name} instance {}", spec.instance)},
            });
            if spec.resolved {
                alert["startsAt"] = json!((now - chrono::Duration::minutes(1)).to_rfc3339());
                alert["endsAt"] = json!((now - chrono::Duration::seconds(1)).to_rfc3339());
            }
            alert
        })
        .collect();
    serde_json::to_vec(&items).expect("JSON values encode")
}

fn native(gen: &Generator, spec: &AlertSpec, severity: &str) -> Value {
    let name = gen.alertname(spec.group);
    json!({
        "status": if spec.resolved { "resolved" } else { "firing" },
        "severity": severity,
        "summary": format!("{name} instance {}", spec.instance),
        "labels": labels(&name, spec, severity),
    })
}

/// Native alerts, one JSON object per line.
pub fn native_ndjson(gen: &Generator, specs: &[AlertSpec], severity: &str) -> Vec<u8> {
    let mut out = String::with_capacity(specs.len() * 200);
    for spec in specs {
        let _ = writeln!(out, "{}", native(gen, spec, severity));
    }
    out.into_bytes()
}

/// Native alerts as one JSON array (a Kafka message).
pub fn native_array(gen: &Generator, specs: &[AlertSpec], severity: &str) -> Vec<u8> {
    let items: Vec<Value> = specs.iter().map(|s| native(gen, s, severity)).collect();
    serde_json::to_vec(&items).expect("JSON values encode")
}

/// One PagerDuty Events v2 event: trigger, or resolve of a sent dedup key.
pub fn pagerduty(gen: &Generator, spec: &AlertSpec, severity: &str) -> Vec<u8> {
    let name = gen.alertname(spec.group);
    let event = if spec.resolved {
        json!({
            "routing_key": "incidentd-load",
            "event_action": "resolve",
            "dedup_key": dedup_key(&name, spec.instance),
        })
    } else {
        json!({
            "routing_key": "incidentd-load",
            "event_action": "trigger",
            "dedup_key": dedup_key(&name, spec.instance),
            "payload": {
                "summary": format!("{name} instance {}", spec.instance),
                "source": format!("instance-{}", spec.instance),
                "severity": severity,
                "custom_details": {"group": name, "instance": spec.instance},
            },
        })
    };
    serde_json::to_vec(&event).expect("JSON values encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(groups: u64, fingerprints_per_group: u64, dup: f64, resolve: f64) -> Shape {
        Shape {
            groups,
            fingerprints_per_group,
            group_run: 1,
            duplicate_ratio: dup,
            resolve_ratio: resolve,
        }
    }

    fn run(dup: f64, resolve: f64, n: u64) -> GenStats {
        let mut gen = Generator::new("t", shape(50, 10_000, dup, resolve), 42);
        for i in 0..n {
            gen.next(i as f64 / n as f64);
        }
        gen.stats
    }

    #[test]
    fn honours_ratios_approximately() {
        let n = 100_000;
        let stats = run(0.3, 0.1, n);
        let dup = stats.duplicates as f64 / n as f64;
        let resolved = stats.resolved as f64 / n as f64;
        assert!((dup - 0.3).abs() < 0.02, "duplicates {dup}");
        assert!((resolved - 0.1).abs() < 0.02, "resolved {resolved}");
        assert_eq!(stats.groups_opened, 50);
        assert_eq!(
            stats.new_fingerprints + stats.duplicates + stats.resolved,
            n
        );
    }

    #[test]
    fn no_repeats_without_ratios() {
        let stats = run(0.0, 0.0, 10_000);
        assert_eq!(stats.duplicates + stats.resolved, 0);
    }

    #[test]
    fn groups_open_evenly_and_first_alert_fires() {
        let mut gen = Generator::new("t", shape(10, 5, 0.5, 0.5), 7);
        let first = gen.next(0.0);
        assert!(first.opens_group && !first.resolved && first.group == 0);
        let mut opened = 1;
        for step in 1..=100 {
            let spec = gen.next(step as f64 / 100.0);
            if spec.opens_group {
                opened += 1;
                assert_eq!(spec.group, opened - 1);
            } else {
                assert!(spec.group < opened);
            }
        }
        assert_eq!(opened, 10);
    }

    /// With `group_run`, the alerts after a group's opening come in runs
    /// of that length to one group, as Prometheus sends a rule's alerts.
    #[test]
    fn alerts_come_in_runs_of_group_run() {
        let groups = 20;
        let mut gen = Generator::new(
            "t",
            Shape {
                group_run: 10,
                ..shape(groups, 50, 0.3, 0.05)
            },
            3,
        );
        // Every group open first, so no opening cuts a run short.
        for _ in 0..groups {
            assert!(gen.next(1.0).opens_group);
        }
        let specs: Vec<AlertSpec> = (0..1_000).map(|_| gen.next(1.0)).collect();
        for run in specs.chunks(10) {
            assert!(run.iter().all(|spec| spec.group == run[0].group));
        }
        let changes = specs.windows(2).filter(|w| w[0].group != w[1].group);
        // A new run picks the same group again one time in `groups`.
        assert!(changes.count() > 80, "runs go to random groups");
    }

    #[test]
    fn same_seed_same_alerts() {
        let mut a = Generator::new("t", shape(10, 5, 0.2, 0.2), 9);
        let mut b = Generator::new("t", shape(10, 5, 0.2, 0.2), 9);
        for i in 0..1000 {
            assert_eq!(a.next(i as f64 / 1000.0), b.next(i as f64 / 1000.0));
        }
    }

    #[test]
    fn encodes_each_format() {
        let mut gen = Generator::new("r1", shape(1, 2, 0.0, 0.0), 1);
        let spec = gen.next(0.0);
        let am: Value =
            serde_json::from_slice(&alertmanager_v2(&gen, &[spec], "critical")).unwrap();
        assert_eq!(am[0]["labels"]["alertname"], "load-r1-0");
        let nd = String::from_utf8(native_ndjson(&gen, &[spec, spec], "info")).unwrap();
        assert_eq!(nd.lines().count(), 2);
        let line: Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
        assert_eq!(line["status"], "firing");
        assert_eq!(line["labels"]["severity"], "info");
        let pd: Value = serde_json::from_slice(&pagerduty(&gen, &spec, "error")).unwrap();
        assert_eq!(pd["dedup_key"], "load-r1-0-0");
        assert_eq!(gen.incident_key(Mode::Pagerduty, 0), "load-r1-0-0");
        let resolved = AlertSpec {
            resolved: true,
            ..spec
        };
        let am: Value =
            serde_json::from_slice(&alertmanager_v2(&gen, &[resolved], "critical")).unwrap();
        assert!(am[0]["endsAt"].is_string());
    }
}
