use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::model::Timestamp;

/// What time it is, as the engine sees it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time read once at start, then advanced by tokio's monotonic
/// clock. Deadlines therefore never jump with wall-clock adjustments, and a
/// test that pauses tokio's clock moves the engine's time with it.
#[derive(Clone, Debug)]
pub struct TokioClock {
    wall_at_start: Timestamp,
    instant_at_start: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        TokioClock::starting_at(Timestamp(wall.as_millis() as i64))
    }

    /// A clock that reads `start` now (for tests with a fixed calendar).
    pub fn starting_at(start: Timestamp) -> Self {
        TokioClock {
            wall_at_start: start,
            instant_at_start: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.wall_at_start.plus(self.instant_at_start.elapsed())
    }
}
