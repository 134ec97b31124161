//! A receiver for tests: answers with a script, then delivers, and notes
//! each attempt's idempotency key and time (paused-clock tests read the
//! backoff from it).

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::time::Instant;

use super::endpoint::{Attempt, Failure, Post, Request};

pub struct Scripted {
    /// Answers still to give, last first.
    script: Mutex<Vec<Attempt>>,
    calls: Mutex<Vec<(String, Instant)>>,
}

impl Scripted {
    pub fn new(mut script: Vec<Attempt>) -> Scripted {
        script.reverse();
        Scripted {
            script: Mutex::new(script),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The idempotency key of every attempt, in order.
    pub fn keys(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls.iter().map(|(key, _)| key.clone()).collect()
    }

    /// Pauses between attempts, in milliseconds.
    pub fn gaps(&self) -> Vec<u128> {
        let calls = self.calls.lock().unwrap();
        calls
            .windows(2)
            .map(|w| (w[1].1 - w[0].1).as_millis())
            .collect()
    }
}

/// A retryable answer with `status`.
pub fn failed(status: u16) -> Attempt {
    Attempt::Failed(Failure {
        error: format!("receiver answered {status}"),
        status: Some(status),
    })
}

#[async_trait]
impl Post for Scripted {
    async fn post(&self, request: &Request<'_>) -> Attempt {
        self.calls
            .lock()
            .unwrap()
            .push((request.idempotency_key.to_string(), Instant::now()));
        self.script
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Attempt::Delivered)
    }
}
