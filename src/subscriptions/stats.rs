use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::telemetry;

/// What one subscription's deliveries came to on this replica since it
/// started; each count also goes to the process-wide metrics.
#[derive(Default)]
pub struct DeliveryStats {
    delivered: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    dropped_queue_full: AtomicU64,
}

/// `DeliveryStats` read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveryCounts {
    /// Events the receiver accepted (2xx).
    pub delivered: u64,
    /// Attempts after an event's first.
    pub retried: u64,
    /// Events given up on after their last attempt, or refused (4xx).
    pub dead_lettered: u64,
    /// Events dead-lettered unsent because the queue was full.
    pub dropped_queue_full: u64,
}

impl DeliveryStats {
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::SUBSCRIPTION_DELIVERIES, "outcome" => "delivered")
            .increment(1);
    }

    pub fn retried(&self, retries: u32) {
        self.retried.fetch_add(retries.into(), Ordering::Relaxed);
        metrics::counter!(telemetry::SUBSCRIPTION_RETRIES).increment(retries.into());
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::SUBSCRIPTION_DELIVERIES, "outcome" => "dead_lettered")
            .increment(1);
    }

    pub fn dropped_queue_full(&self) {
        self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::SUBSCRIPTION_DELIVERIES, "outcome" => "queue_full")
            .increment(1);
    }

    pub fn counts(&self) -> DeliveryCounts {
        DeliveryCounts {
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
        }
    }
}
