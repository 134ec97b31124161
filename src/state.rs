use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use incidentd_actors::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::bus::EventBus;
use crate::config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub bus: Arc<EventBus>,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
