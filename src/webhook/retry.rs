use std::time::Duration;

use super::endpoint::{Attempt, Failure, Post, Request};

/// How often and how patiently a delivery is tried.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts in all, the first included (at least one is made).
    pub max_attempts: u32,
    /// Pause before the second attempt; it doubles per attempt...
    pub initial_backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
}

impl Retry {
    /// The pause before attempt `attempt` (2, 3, ...).
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(31);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// How a delivery ended, after how many attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub attempts: u32,
    /// The last failure when it was never delivered.
    pub result: Result<(), Failure>,
}

/// Posts `request` until it is delivered, refused, or `retry.max_attempts`
/// have failed, pausing with exponential backoff in between. `what` names
/// the delivery in logs (a channel, a subscription).
pub async fn deliver(
    target: &dyn Post,
    request: &Request<'_>,
    retry: &Retry,
    what: &str,
) -> Outcome {
    let max_attempts = retry.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let failure = match target.post(request).await {
            Attempt::Delivered => {
                return Outcome {
                    attempts: attempt,
                    result: Ok(()),
                }
            }
            Attempt::Refused(failure) => {
                return Outcome {
                    attempts: attempt,
                    result: Err(failure),
                }
            }
            Attempt::Failed(failure) => failure,
        };
        if attempt == max_attempts {
            return Outcome {
                attempts: attempt,
                result: Err(failure),
            };
        }
        tracing::warn!(to = what, attempt, error = %failure.error, "webhook delivery failed; will retry");
        attempt += 1;
        tokio::time::sleep(retry.backoff_before(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::scripted::{failed, Scripted};

    const REQUEST: Request<'static> = Request {
        body: b"{}",
        content_type: "application/json",
        idempotency_key: "k",
        headers: &[],
    };

    fn retry(max_attempts: u32) -> Retry {
        Retry {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap() {
        let target = Scripted::new(vec![failed(500); 4]);
        let outcome = deliver(&target, &REQUEST, &retry(10), "test").await;
        assert_eq!(
            outcome,
            Outcome {
                attempts: 5,
                result: Ok(())
            }
        );
        assert_eq!(target.gaps(), vec![100, 200, 350, 350]);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_failure() {
        let target = Scripted::new(vec![failed(500), failed(500), failed(503)]);
        let outcome = deliver(&target, &REQUEST, &retry(3), "test").await;
        assert_eq!(outcome.attempts, 3);
        assert_eq!(outcome.result.unwrap_err().status, Some(503));
        assert_eq!(target.gaps(), vec![100, 200]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_not_retried() {
        let refused = Attempt::Refused(Failure {
            error: "receiver refused it with 400".into(),
            status: Some(400),
        });
        let target = Scripted::new(vec![refused]);
        let outcome = deliver(&target, &REQUEST, &retry(5), "test").await;
        assert_eq!(outcome.attempts, 1);
        assert_eq!(outcome.result.unwrap_err().status, Some(400));
    }
}
