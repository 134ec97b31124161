use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// What a PagerDuty trigger looked like, so a later acknowledge or resolve
/// (which carries only the routing and dedup keys) finds the same group.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerKey {
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
}

/// (routing key, dedup key) -> the trigger's tenant and labels, bounded:
/// past `capacity` the oldest keys are forgotten (and their later
/// acknowledge/resolve events are refused with a clear error).
pub struct PagerDutyKeys {
    capacity: usize,
    inner: Mutex<Keys>,
}

/// (routing key, dedup key).
type KeyPair = (String, String);

#[derive(Default)]
struct Keys {
    by_key: HashMap<KeyPair, TriggerKey>,
    /// Insertion order, oldest first, for forgetting past capacity.
    order: VecDeque<KeyPair>,
}

impl PagerDutyKeys {
    pub fn new(capacity: usize) -> Self {
        PagerDutyKeys {
            capacity: capacity.max(1),
            inner: Mutex::new(Keys::default()),
        }
    }

    pub fn remember(&self, routing_key: &str, dedup_key: &str, trigger: TriggerKey) {
        let mut guard = self.inner.lock().expect("keys lock");
        let Keys { by_key: map, order } = &mut *guard;
        let key = (routing_key.to_string(), dedup_key.to_string());
        if map.insert(key.clone(), trigger).is_none() {
            order.push_back(key);
        }
        while order.len() > self.capacity {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }

    pub fn find(&self, routing_key: &str, dedup_key: &str) -> Option<TriggerKey> {
        let guard = self.inner.lock().expect("keys lock");
        guard
            .by_key
            .get(&(routing_key.to_string(), dedup_key.to_string()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(n: &str) -> TriggerKey {
        TriggerKey {
            tenant: "t".into(),
            labels: BTreeMap::from([("source".to_string(), n.to_string())]),
        }
    }

    #[test]
    fn remembers_per_routing_key_and_forgets_the_oldest_past_capacity() {
        let keys = PagerDutyKeys::new(2);
        keys.remember("r1", "d", trigger("a"));
        keys.remember("r2", "d", trigger("b"));
        assert_eq!(keys.find("r1", "d"), Some(trigger("a")));
        assert_eq!(keys.find("r2", "d"), Some(trigger("b")));
        keys.remember("r3", "d", trigger("c"));
        assert_eq!(keys.find("r1", "d"), None);
        assert_eq!(keys.find("r3", "d"), Some(trigger("c")));
    }
}
