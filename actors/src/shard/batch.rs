use std::collections::HashMap;
use std::sync::Arc;

use crate::incident::RecordRuns;
use crate::model::{Alert, CompactString, OpeningRecord};
use crate::routing::RouteSettings;

use super::entry::GroupRef;
use super::supervisor::shard_of;

/// An alert with its routing decision.
pub(crate) struct RoutedAlert {
    pub alert: Alert,
    pub tenant: CompactString,
    pub group_key: String,
    pub route: Arc<RouteSettings>,
    /// The stream record the alert was read from, if it came from one.
    pub record: Option<OpeningRecord>,
}

/// A batch's alerts for one group.
pub(crate) struct GroupInput {
    pub group: GroupRef,
    pub route: Arc<RouteSettings>,
    pub alerts: Vec<Alert>,
    /// Where the alerts were read: an incident they open takes its id from
    /// the record of its first firing alert.
    pub records: RecordRuns,
}

/// A batch's alerts for one shard, by group: groups in the order their
/// first alert came, alerts in arrival order inside each.
#[derive(Default)]
pub(crate) struct ShardAlerts {
    pub groups: Vec<GroupInput>,
}

impl ShardAlerts {
    /// Alerts in all of `groups`.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|input| input.alerts.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Splits a batch's routed alerts by shard and group. It runs on the
/// submitting task, not in the shard: the shard actor is where a shard's
/// alerts queue, and it then looks each group up once, not each alert.
/// A group's shard is hashed once per batch, at its first alert.
pub(crate) struct BatchSplit {
    per_shard: Vec<ShardAlerts>,
    /// Each group's shard and place in that shard's `groups`.
    index: HashMap<GroupRef, (usize, usize)>,
}

impl BatchSplit {
    /// A split for a batch of `alerts` alerts: its index has room for a
    /// group per alert, so it is not grown and rehashed as groups come.
    pub fn new(shards: usize, alerts: usize) -> Self {
        BatchSplit {
            per_shard: (0..shards).map(|_| ShardAlerts::default()).collect(),
            index: HashMap::with_capacity(alerts),
        }
    }

    pub fn push(&mut self, routed: RoutedAlert) {
        let group = (routed.tenant, routed.group_key);
        let (shard, i) = match self.index.get(&group) {
            Some(&at) => at,
            None => {
                let shard = shard_of(&group.0, &group.1, self.per_shard.len());
                let groups = &mut self.per_shard[shard].groups;
                let at = (shard, groups.len());
                let group = Arc::new(group);
                self.index.insert(group.clone(), at);
                groups.push(GroupInput {
                    group,
                    route: routed.route,
                    alerts: Vec::new(),
                    records: RecordRuns::default(),
                });
                at
            }
        };
        let input = &mut self.per_shard[shard].groups[i];
        input.records.push(input.alerts.len(), routed.record);
        input.alerts.push(routed.alert);
    }

    /// The alerts of each shard, indexed by shard.
    pub fn finish(self) -> Vec<ShardAlerts> {
        self.per_shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(tenant: &str, group: &str, instance: &str) -> RoutedAlert {
        RoutedAlert {
            alert: crate::test_support::alert(&[("instance", instance)]),
            tenant: tenant.into(),
            group_key: group.into(),
            route: Arc::new(RouteSettings::manual()),
            record: None,
        }
    }

    /// Each shard's groups as (tenant, group key, instances).
    fn split(shards: usize, batch: Vec<RoutedAlert>) -> Vec<Vec<(String, String, Vec<String>)>> {
        let mut split = BatchSplit::new(shards, batch.len());
        for routed in batch {
            split.push(routed);
        }
        split
            .finish()
            .into_iter()
            .map(|shard| {
                let shard_len = shard.len();
                let groups: Vec<_> = shard
                    .groups
                    .into_iter()
                    .map(|input| {
                        let instances: Vec<String> = input
                            .alerts
                            .iter()
                            .map(|alert| alert.labels["instance"].to_string())
                            .collect();
                        (input.group.0.to_string(), input.group.1.clone(), instances)
                    })
                    .collect();
                let len: usize = groups.iter().map(|(_, _, alerts)| alerts.len()).sum();
                assert_eq!(shard_len, len, "len counts every alert of the shard");
                groups
            })
            .collect()
    }

    fn expected(tenant: &str, group: &str, instances: &[&str]) -> (String, String, Vec<String>) {
        let instances = instances.iter().map(|i| i.to_string()).collect();
        (tenant.to_string(), group.to_string(), instances)
    }

    #[test]
    fn keeps_first_seen_group_order_and_arrival_order_inside_each() {
        let batch = vec![
            routed("t", "a", "1"),
            routed("t", "a", "2"),
            routed("t", "b", "3"),
            routed("u", "b", "4"),
            routed("t", "a", "5"),
            routed("t", "b", "6"),
        ];
        assert_eq!(
            split(1, batch),
            vec![vec![
                expected("t", "a", &["1", "2", "5"]),
                expected("t", "b", &["3", "6"]),
                expected("u", "b", &["4"]),
            ]]
        );
    }

    #[test]
    fn each_group_goes_to_its_shard() {
        let groups: Vec<String> = (0..20).map(|g| format!("g{g}")).collect();
        let batch = groups
            .iter()
            .flat_map(|g| [routed("t", g, "1"), routed("t", g, "2")])
            .collect();
        for (shard, groups) in split(4, batch).into_iter().enumerate() {
            for (tenant, group, instances) in groups {
                assert_eq!(shard_of(&tenant, &group, 4), shard, "{group}");
                assert_eq!(instances, ["1", "2"]);
            }
        }
    }
}
