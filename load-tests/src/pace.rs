//! Pacing: when the next request or message is due, and when the send
//! phase is over.

use std::time::{Duration, Instant};

pub struct Pacer {
    start: Instant,
    rate: u64,
    duration: Duration,
    alerts: u64,
}

impl Pacer {
    /// `rate` alerts per second, 0 = no pacing.
    pub fn new(start: Instant, rate: u64, duration: Duration) -> Pacer {
        Pacer {
            start,
            rate,
            duration,
            alerts: 0,
        }
    }

    /// When a request of `alerts` alerts may go: waits until it is due, then
    /// returns the elapsed fraction of the send phase; `None` once it is
    /// over. The schedule is absolute (alerts so far / rate), so a late send
    /// is followed by catching up rather than by a lower rate.
    pub async fn next(&mut self, alerts: usize) -> Option<f64> {
        if self.rate > 0 {
            let due = self.start + Duration::from_secs_f64(self.alerts as f64 / self.rate as f64);
            if due >= self.start + self.duration {
                return None;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let elapsed = self.start.elapsed();
        if elapsed >= self.duration {
            return None;
        }
        self.alerts += alerts as u64;
        Some(elapsed.as_secs_f64() / self.duration.as_secs_f64())
    }
}
