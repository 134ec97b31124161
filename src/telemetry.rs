//! Logging and the Prometheus exporter. Metric names follow
//! `incidentd_<thing>_<unit>[_total]`; the engine's own are in
//! `incidentd_actors::telemetry`, the service's are recorded where they
//! happen with names listed here.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

pub const HTTP_REQUESTS: &str = "incidentd_http_requests_total";
pub const HTTP_DURATION: &str = "incidentd_http_request_duration_seconds";
pub const ALERTS_RECEIVED: &str = "incidentd_alerts_received_total";
pub const ALERTS_REJECTED: &str = "incidentd_alerts_rejected_total";
pub const INGEST_DURABLE: &str = "incidentd_ingest_to_durable_seconds";
/// Incident events to broker topics by `sink` and `outcome`: acked, retried.
pub const EVENTS_PUBLISHED: &str = "incidentd_events_published_total";
/// From handing an event to the broker's client to its acknowledgement.
pub const EVENTS_ACK_DURATION: &str = "incidentd_events_ack_duration_seconds";
pub const NOTIFICATIONS: &str = "incidentd_notifications_total";
/// Webhook subscription events by `outcome`: delivered, dead_lettered, queue_full.
pub const SUBSCRIPTION_DELIVERIES: &str = "incidentd_subscription_deliveries_total";
/// Webhook subscription attempts after an event's first.
pub const SUBSCRIPTION_RETRIES: &str = "incidentd_subscription_retries_total";
pub const STORE_COMMAND_DURATION: &str = "incidentd_store_command_duration_seconds";
pub const STORE_FENCED_WRITES: &str = "incidentd_store_fenced_writes_total";
pub const STORE_ERRORS: &str = "incidentd_store_errors_total";
/// How long dropping a segment from the embedded store's shard logs took
/// (the shard's commits wait meanwhile), by `outcome`: done, failed. The
/// file's delete comes later, off the commit path.
pub const LOCAL_LOG_COMPACTION_DURATION: &str = "incidentd_local_log_compaction_duration_seconds";
/// Dropped shard log segments by `outcome`: deleted, failed (the delete
/// failed; this shard's later ones are kept), kept. Kept files are read
/// again, harmlessly, at the next start.
pub const LOCAL_LOG_SEGMENTS_DROPPED: &str = "incidentd_local_log_segments_dropped_total";
/// PagerDuty trigger keys the store refused: a later acknowledge or resolve
/// by that dedup key fails on another replica or after a restart.
pub const PAGERDUTY_KEYS_NOT_STORED: &str = "incidentd_pagerduty_keys_not_stored_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide metrics recorder once and returns its handle.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("incidentd_snapshot_flush_batch_size".into()),
                    &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test harness) may already be installed;
            // then this handle simply renders nothing new.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Added to `RUST_LOG` (or the default `info`) unless it names ractor:
/// ractor opens an INFO span per actor, enters it at every poll and hands
/// it on with every message sent inside it. With thousands of incident
/// actors that took about 4 % of ingest CPU, and it tagged log lines with
/// actor ids that mean nothing to an operator.
const ACTOR_SPANS_OFF: &str = "ractor=warn";

/// The log filter for `rust_log`, the `RUST_LOG` variable if set.
fn log_filter(rust_log: Option<&str>) -> String {
    let levels = rust_log
        .map(str::trim)
        .filter(|levels| !levels.is_empty())
        .unwrap_or("info");
    if levels.contains("ractor") {
        levels.to_string()
    } else {
        format!("{levels},{ACTOR_SPANS_OFF}")
    }
}

pub fn init_logging(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(rust_log.as_deref()))
        .unwrap_or_else(|e| {
            // Logging is not set up yet: this is the one place to say so.
            eprintln!("RUST_LOG {rust_log:?} is not a valid log filter ({e}); logging at info");
            log_filter(None).into()
        });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_leaves_actor_spans_out_unless_rust_log_names_ractor() {
        assert_eq!(log_filter(None), "info,ractor=warn");
        assert_eq!(log_filter(Some(" ")), "info,ractor=warn");
        assert_eq!(
            log_filter(Some("debug,incidentd=trace")),
            "debug,incidentd=trace,ractor=warn"
        );
        assert_eq!(log_filter(Some("info,ractor=info")), "info,ractor=info");

        // What ractor opens around each actor (`#[instrument(name = "Actor")]`).
        let quiet = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(None)))
            .finish();
        tracing::subscriber::with_default(quiet, || {
            assert!(tracing::info_span!(target: "ractor::actor", "Actor").is_disabled());
            assert!(!tracing::info_span!(target: "incidentd::server", "serve").is_disabled());
        });
    }
}
