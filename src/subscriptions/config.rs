use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::webhook::Retry;

/// `[subscriptions]`: how webhook subscriptions deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// Most subscriptions at once; creating one more is refused (409).
    pub max_subscriptions: usize,
    /// Events waiting for delivery, per subscription; beyond it an event
    /// goes straight to the dead-letter list with reason "queue full".
    pub queue_capacity: usize,
    /// Attempts per event, the first included; then it is dead-lettered
    /// and the next event goes.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Bound on one attempt, from sending to the end of the answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Dead letters kept per subscription (the newest).
    pub dead_letter_keep: usize,
    /// How often each replica reloads the subscriptions from the store, so
    /// one created or deleted on another replica takes effect here.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            max_subscriptions: 100,
            queue_capacity: 10_000,
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            dead_letter_keep: 1000,
            refresh_interval: Duration::from_secs(5),
        }
    }
}

impl SubscriptionsConfig {
    pub fn retry(&self) -> Retry {
        Retry {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }

    /// What serde cannot check.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let counts = [
            ("max_subscriptions", self.max_subscriptions),
            ("queue_capacity", self.queue_capacity),
            ("max_attempts", self.max_attempts as usize),
            ("dead_letter_keep", self.dead_letter_keep),
        ];
        let durations = [
            ("timeout", self.timeout),
            ("refresh_interval", self.refresh_interval),
        ];
        let zero = counts
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(name, _)| *name)
            .chain(
                durations
                    .iter()
                    .filter(|(_, d)| d.is_zero())
                    .map(|(name, _)| *name),
            );
        for name in zero {
            errors.push(format!("subscriptions.{name} must be above zero"));
        }
        if self.max_backoff < self.initial_backoff {
            errors.push("subscriptions.max_backoff must be at least initial_backoff".into());
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bounds_are_named() {
        let config = SubscriptionsConfig {
            queue_capacity: 0,
            refresh_interval: Duration::ZERO,
            max_backoff: Duration::from_millis(1),
            ..SubscriptionsConfig::default()
        };
        assert_eq!(
            config.errors(),
            vec![
                "subscriptions.queue_capacity must be above zero",
                "subscriptions.refresh_interval must be above zero",
                "subscriptions.max_backoff must be at least initial_backoff",
            ]
        );
        assert!(SubscriptionsConfig::default().errors().is_empty());
    }
}
