use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{ListenerExt, TapIo};
use axum::{Json, Router};
use incidentd_actors::ports::{SnapshotStore, TokioClock};
use incidentd_actors::{compile_rules, Engine, Ports};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::api::error::ApiError;
use crate::bus::EventBus;
use crate::config::{Config, StoreKind, WriteFormats};
use crate::ingest::pagerduty_keys::{TriggerKeyStore, PAGERDUTY_KEYS};
use crate::ingest::pulsar::PulsarSources;
use crate::ingest::PagerDutyKeys;
use crate::intake::{Intake, KafkaIntake};
use crate::kafka::Cluster;
use crate::notify::Notifier;
use crate::sinks::{start_kafka, start_pulsar, Fanout};
use crate::state::{AppState, Directory};
use crate::store::{LocalStore, RedisStore};
use crate::subscriptions::{SubscriptionStore, Subscriptions};
use crate::telemetry;

/// The whole HTTP surface: operations endpoints open, everything else
/// behind bearer tokens when any are configured.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .merge(crate::api::router())
        .merge(crate::ingest::router(
            state.config.server.body_limit_bytes,
            state.config.server.pagerduty_body_limit_bytes,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(protected)
        .layer(middleware::from_fn(record_http_metrics))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Ready once every shard is restored (the server only listens after that),
/// while every shard can store its snapshots and has room, and until
/// shutdown begins. Otherwise 503 with the reason.
async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready_reason(&state) {
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response(),
        None => {
            Json(json!({ "status": "ready", "shards": state.engine.shard_count() })).into_response()
        }
    }
}

fn not_ready_reason(state: &AppState) -> Option<String> {
    if state.is_shutting_down() {
        return Some("shutting down".into());
    }
    let loads = state.engine.loads();
    if let Some((shard, error)) = loads
        .iter()
        .find_map(|l| l.store_error().map(|e| (l.shard, e)))
    {
        return Some(format!(
            "shard {shard} cannot store snapshots: {error}; alerts are held in memory and not acknowledged until it can"
        ));
    }
    if let Some(reason) = state.engine.sink_backlog_full() {
        return Some(format!(
            "{reason}; new alerts and commands wait until it drains"
        ));
    }
    let full: Vec<usize> = loads
        .iter()
        .filter(|l| l.fullness() >= 1.0)
        .map(|l| l.shard)
        .collect();
    (!full.is_empty())
        .then(|| format!("shards {full:?} are full: snapshots are not being stored fast enough"))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tokens = &state.config.server.auth_tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if tokens.iter().any(|t| t == token) => next.run(request).await,
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a configured token as `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

async fn record_http_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!(telemetry::HTTP_DURATION, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The store `store.kind` names, behind each port that persists.
struct Stores {
    snapshots: Arc<dyn SnapshotStore>,
    subscriptions: Arc<dyn SubscriptionStore>,
    trigger_keys: Arc<dyn TriggerKeyStore>,
    directory: Directory,
}

async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    Ok(match config.store.kind {
        StoreKind::Local => {
            let store = LocalStore::open(&config.server.data_dir).with_context(|| {
                format!(
                    "opening the data directory {}",
                    config.server.data_dir.display()
                )
            })?;
            let store = Arc::new(store);
            Stores {
                snapshots: store.clone(),
                subscriptions: store.clone(),
                trigger_keys: store,
                directory: Directory::Local,
            }
        }
        StoreKind::Redis => {
            if config.store.write_formats != WriteFormats::Current {
                tracing::warn!(
                    "store.write_formats: writing only the formats builds of 2026-11-28 read, for a rolling upgrade; \
                     set store.write_formats = \"current\" once every replica runs this build"
                );
            }
            let store = Arc::new(
                RedisStore::connect(&config.store)
                    .await
                    .context("connecting to the snapshot store (store.redis_url)")?,
            );
            Stores {
                snapshots: store.clone(),
                subscriptions: store.clone(),
                trigger_keys: store.clone(),
                directory: Directory::Redis(store),
            }
        }
    })
}

/// Starts everything, serves until SIGTERM/SIGINT, then drains and stores.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    // Installed first, so the store's and the engine's restore are measured.
    let metrics = telemetry::metrics();
    let (tree, policies) = compile_rules(&config.routing, config.escalation_policies.clone())
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n  {}", errors.join("\n  ")))?;
    let Stores {
        snapshots: store,
        subscriptions: subscription_store,
        trigger_keys,
        directory,
    } = open_stores(&config).await?;
    let bus = Arc::new(EventBus::new(config.server.sse_replay_events));
    let notifier = Notifier::start(&config.notifier);
    bus.add_listener(notifier.clone());
    let client = reqwest::Client::builder()
        .build()
        .context("building the HTTP client of webhook subscriptions")?;
    let subscriptions =
        Subscriptions::start(subscription_store, config.subscriptions.clone(), client)
            .await
            .context("loading webhook subscriptions from the store")?;
    bus.add_listener(subscriptions.clone());
    let mut topics = Vec::new();
    for sink in &config.events.kafka {
        topics.push(start_kafka(sink, &config.kafka).map_err(|e| anyhow::anyhow!(e))?);
    }
    for sink in &config.events.pulsar {
        topics.push(start_pulsar(sink));
    }
    let ports = Ports {
        store,
        sink: Arc::new(Fanout {
            bus: bus.clone(),
            topics,
        }),
        clock: Arc::new(TokioClock::new()),
    };
    let pagerduty = Arc::new(PagerDutyKeys::new(
        PAGERDUTY_KEYS,
        config.ingest.pagerduty_key_ttl,
        trigger_keys,
    ));
    let (engine, intake, cluster) = if config.kafka.enabled() {
        let Directory::Redis(directory) = &directory else {
            anyhow::bail!("kafka cluster mode needs store.kind = \"redis\"");
        };
        // Shards arrive with the consumer group's assignment.
        let engine = Arc::new(Engine::without_shards(
            config.engine.clone(),
            tree,
            policies,
            ports,
        ));
        let cluster = Cluster::start(
            &config.kafka,
            engine.clone(),
            pagerduty.clone(),
            config.ingest.default_tenant.clone(),
        )
        .map_err(|e| anyhow::anyhow!("starting the Kafka cluster member: {e}"))?;
        let intake = Intake::cluster(
            engine.clone(),
            KafkaIntake {
                producer: cluster.producer.clone(),
                pending: cluster.pending.clone(),
                directory: directory.clone(),
                wait: config.kafka.produce_timeout,
            },
        );
        tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, shards = engine.shard_count(), "joined the Kafka group");
        (engine, intake, Some(cluster))
    } else {
        let (engine, report) = Engine::start(config.engine.clone(), tree, policies, ports).await?;
        tracing::info!(
            incidents = report.incidents,
            rejected = report.rejected.len(),
            took_ms = report.duration.as_millis() as u64,
            shards = engine.shard_count(),
            "restored"
        );
        let engine = Arc::new(engine);
        (engine.clone(), Intake::standalone(engine), None)
    };
    let pulsar_sources = config.pulsar.enabled().then(|| {
        PulsarSources::start(
            &config.pulsar,
            intake.clone(),
            pagerduty.clone(),
            config.ingest.default_tenant.clone(),
        )
    });
    let state = AppState {
        engine,
        intake,
        pagerduty,
        bus,
        subscriptions: subscriptions.clone(),
        config: config.clone(),
        metrics,
        shutting_down: Default::default(),
        directory,
    };
    let listener = listen(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    tracing::info!(listen = %config.server.listen, "serving");
    let shutting_down = state.shutting_down.clone();
    let engine = state.engine.clone();
    // One deadline, set when the signal comes, bounds draining requests,
    // storing the shards and delivering queued notifications and
    // subscription events together.
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(None::<Instant>);
    let timeout = config.server.shutdown_timeout;
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        shutting_down.store(true, Ordering::Relaxed);
        deadline_tx.send_replace(Some(Instant::now() + timeout));
        tracing::info!("shutdown requested: draining requests");
    });
    let deadline = tokio::select! {
        served = server => {
            served.context("serving HTTP")?;
            let signalled = *deadline_rx.borrow();
            signalled.unwrap_or_else(|| Instant::now() + timeout)
        }
        // A request that never ends (a stuck client) must not hold the exit.
        deadline = async {
            let mut signalled = deadline_rx.clone();
            let deadline = match signalled.wait_for(Option::is_some).await {
                Ok(deadline) => deadline.expect("waited for Some"),
                Err(_) => std::future::pending().await,
            };
            tokio::time::sleep_until(deadline.into()).await;
            deadline
        } => {
            tracing::warn!(?timeout, "requests still open at the shutdown deadline; closing them");
            deadline
        }
    };
    if let Some(sources) = pulsar_sources {
        // Before the engine and the cluster: the batch in flight still
        // needs them to become durable and be acknowledged.
        sources
            .stop(deadline.saturating_duration_since(Instant::now()))
            .await;
    }
    if let Some(cluster) = cluster {
        // Hands the shards over (stored, committed) so the other replicas
        // take them at once instead of after a session timeout.
        cluster
            .stop(deadline.saturating_duration_since(Instant::now()))
            .await;
    }
    if tokio::time::timeout_at(deadline.into(), engine.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?timeout,
            "shards did not finish storing in time; exiting anyway"
        );
    }
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::join!(notifier.stop(left), subscriptions.stop(left));
    tracing::info!("stopped");
    Ok(())
}

/// Binds the HTTP listener. Every accepted connection gets TCP_NODELAY:
/// without it a small write (an SSE event, a short response) waits behind
/// unacknowledged data for the client's delayed ACK, up to 40 ms on Linux,
/// which was the whole tail of the created-event latency under load.
async fn listen(address: SocketAddr) -> std::io::Result<TapIo<TcpListener, fn(&mut TcpStream)>> {
    let listener = TcpListener::bind(address).await?;
    Ok(listener.tap_io(set_nodelay as fn(&mut TcpStream)))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let mut listener = listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not set");
    }
}
