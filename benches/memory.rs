//! Resident memory per live incident at 100k and 1M incidents, with
//! passivation on and off. Each case runs in a fresh child process so
//! allocations of one case do not hide in the next:
//!   cargo bench --bench memory            (all cases)
//!   cargo bench --bench memory -- 100000 on   (one case)

mod allocator;
mod support;

use std::sync::Arc;
use std::time::Instant;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn run_case(live: usize, passivation: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Arc::new(runtime.block_on(support::engine(support::settings(passivation))));
    let before = rss_kib();
    let started = Instant::now();
    let alerts = (0..live).map(support::alert).collect();
    runtime.block_on(support::submit_all(&engine, alerts, 1_000, 16));
    let took = started.elapsed();
    let after = rss_kib();
    let per_incident = (after - before) as f64 * 1024.0 / live as f64;
    println!(
        "live={live:>8} passivation={:<3} rss_before={:>8} KiB rss_after={:>9} KiB per_incident={:>7.0} B created_in={:.1}s",
        if passivation { "on" } else { "off" },
        before,
        after,
        per_incident,
        took.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let [live, mode] = args.as_slice() {
        run_case(live.parse().expect("live count"), mode == "on");
        return;
    }
    let me = std::env::current_exe().expect("current exe");
    for live in ["100000", "1000000"] {
        for mode in ["on", "off"] {
            let status = std::process::Command::new(&me)
                .args([live, mode])
                .status()
                .expect("run case");
            assert!(status.success(), "case {live} {mode} failed");
        }
    }
}
