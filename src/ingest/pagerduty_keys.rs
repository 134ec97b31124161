use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use incidentd_actors::model::{Alert, AlertStatus};

use super::PagerDutyEvent;

/// What a PagerDuty trigger looked like, so a later acknowledge or resolve
/// (which carries only the routing and dedup keys) finds the same group.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerKey {
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
}

/// PagerDuty trigger keys remembered for later acknowledge/resolve events.
pub const PAGERDUTY_KEYS: usize = 100_000;

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

/// What a PagerDuty event asks for, once its dedup key is looked up.
#[derive(Debug, PartialEq)]
pub enum PagerDutyAction {
    /// A trigger or a resolve: an alert to submit.
    Alert(Alert),
    /// An acknowledge: for whatever incident `probe`'s group has now.
    Acknowledge { probe: Alert, actor: String },
}

/// An acknowledge or resolve whose dedup key no trigger here carried.
#[derive(Debug, PartialEq)]
pub struct UnknownDedupKey(pub String);

impl std::fmt::Display for UnknownDedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no open incident holds dedup_key {:?} for this routing_key; send a trigger first",
            self.0
        )
    }
}

impl PagerDutyKeys {
    fn trigger(&self, routing_key: &str, dedup_key: &str) -> Result<TriggerKey, UnknownDedupKey> {
        self.find(routing_key, dedup_key)
            .ok_or_else(|| UnknownDedupKey(dedup_key.to_string()))
    }

    /// Turns an event into its action, remembering triggers so their later
    /// acknowledge or resolve finds the same group. Returns the dedup key too.
    pub fn action(
        &self,
        event: PagerDutyEvent,
        tenant: &str,
    ) -> Result<(String, PagerDutyAction), UnknownDedupKey> {
        match event {
            PagerDutyEvent::Trigger {
                routing_key,
                dedup_key,
                alert,
            } => {
                let mut alert = *alert;
                alert.tenant = tenant.to_string();
                let trigger = TriggerKey {
                    tenant: alert.tenant.clone(),
                    labels: alert.labels.clone(),
                };
                self.remember(&routing_key, &dedup_key, trigger);
                Ok((dedup_key, PagerDutyAction::Alert(alert)))
            }
            PagerDutyEvent::Resolve {
                routing_key,
                dedup_key,
            } => {
                let trigger = self.trigger(&routing_key, &dedup_key)?;
                let mut alert = Alert::firing(trigger.labels);
                alert.tenant = trigger.tenant;
                alert.fingerprint = dedup_key.clone();
                alert.status = AlertStatus::Resolved;
                alert.source = "pagerduty".into();
                Ok((dedup_key, PagerDutyAction::Alert(alert)))
            }
            PagerDutyEvent::Acknowledge {
                routing_key,
                dedup_key,
            } => {
                let trigger = self.trigger(&routing_key, &dedup_key)?;
                let mut probe = Alert::firing(trigger.labels);
                probe.tenant = trigger.tenant;
                let actor = format!(
                    "pagerduty:{}",
                    &routing_key.chars().take(6).collect::<String>()
                );
                Ok((dedup_key, PagerDutyAction::Acknowledge { probe, actor }))
            }
        }
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
