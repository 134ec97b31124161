use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How full a shard is: alerts taken but not yet durable, against its
/// capacity. Sources read it to pause before `submit` would refuse.
#[derive(Debug)]
pub struct ShardLoad {
    pub shard: usize,
    pub capacity: usize,
    pending: AtomicUsize,
    /// Why the last flush failed, until one succeeds again.
    store_error: Mutex<Option<String>>,
}

impl ShardLoad {
    pub(crate) fn new(shard: usize, capacity: usize) -> Self {
        ShardLoad {
            shard,
            capacity,
            pending: AtomicUsize::new(0),
            store_error: Mutex::new(None),
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Fraction of capacity in use, 0.0 to 1.0 (or above when a batch overshot).
    pub fn fullness(&self) -> f64 {
        self.pending() as f64 / self.capacity.max(1) as f64
    }

    /// The store error that keeps this shard from making changes durable,
    /// if its last flush failed.
    pub fn store_error(&self) -> Option<String> {
        self.store_error.lock().expect("store error lock").clone()
    }

    pub(crate) fn set_store_error(&self, error: Option<String>) {
        *self.store_error.lock().expect("store error lock") = error;
    }

    /// Reserves room for `n` alerts, or says no without reserving.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p == 0 || p + n <= self.capacity).then_some(p + n)
            })
            .is_ok()
    }

    /// Forgets what a previous owner of the shard left pending.
    pub(crate) fn reset(&self) {
        self.pending.store(0, Ordering::Relaxed);
        self.set_store_error(None);
    }

    pub(crate) fn release(&self, n: usize) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_but_always_takes_one_batch_when_empty() {
        let load = ShardLoad::new(0, 10);
        assert!(
            load.try_reserve(25),
            "an empty shard takes an oversized batch rather than starve it"
        );
        assert!(!load.try_reserve(1));
        load.release(20);
        assert!(load.try_reserve(5));
        assert!(!load.try_reserve(1));
        assert_eq!(load.pending(), 10);
    }
}
