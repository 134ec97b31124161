//! What `GET /incidents` asks for: filters, sort order, and the cursor that
//! pages through the result.
//!
//! A cursor holds the sort key and id of the last item served, not an
//! offset, so incidents opened between two pages neither repeat nor push
//! items out of the next page.

use std::cmp::Ordering;
use std::sync::Arc;

use incidentd_actors::model::{IncidentId, IncidentStatus, IncidentSummary, Severity, Timestamp};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

const KNOWN_PARAMS: &str = "status, severity, service, team, assignee, tenant, label, q, \
     created_after, created_before, resolved_after, resolved_before, sort, order, limit, cursor";

/// A query parameter that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    /// A value that does not parse or is out of range (422).
    Invalid { param: String, message: String },
    /// A cursor this server did not hand out for this sort (400).
    Cursor(String),
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid { param, message } => {
                ApiError::unprocessable(format!("query parameter `{param}`: {message}"))
            }
            QueryError::Cursor(message) => {
                ApiError::bad_request(format!("query parameter `cursor`: {message}"))
            }
        }
    }
}

fn invalid(param: &str, message: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        param: param.to_string(),
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Created,
    Updated,
    Severity,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// Every condition an incident must meet to be listed; unset ones match all.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    pub statuses: Vec<IncidentStatus>,
    pub severities: Vec<Severity>,
    pub service: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub tenant: Option<String>,
    /// `key=value` pairs that must all be among the incident's labels.
    pub labels: Vec<(String, String)>,
    /// Lowercased text the title must contain, ignoring case.
    pub title_contains: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub resolved_after: Option<Timestamp>,
    pub resolved_before: Option<Timestamp>,
}

impl Filter {
    pub fn matches(&self, s: &IncidentSummary) -> bool {
        let equals = |want: &Option<String>, have: &Option<Arc<str>>| {
            want.is_none() || want.as_deref() == have.as_deref()
        };
        (self.statuses.is_empty() || self.statuses.contains(&s.status))
            && (self.severities.is_empty() || self.severities.contains(&s.severity))
            && equals(&self.service, &s.service)
            && equals(&self.team, &s.team)
            && equals(&self.assignee, &s.assignee)
            && self.tenant.as_deref().is_none_or(|t| t == &*s.tenant)
            && self
                .labels
                .iter()
                .all(|(k, v)| s.labels.get(k.as_str()).is_some_and(|have| have == v))
            && self
                .title_contains
                .as_deref()
                .is_none_or(|text| s.title.to_lowercase().contains(text))
            && self.created_after.is_none_or(|t| s.created_at > t)
            && self.created_before.is_none_or(|t| s.created_at < t)
            && self
                .resolved_after
                .is_none_or(|t| s.resolved_at.is_some_and(|r| r > t))
            && self
                .resolved_before
                .is_none_or(|t| s.resolved_at.is_some_and(|r| r < t))
    }
}

/// Where the previous page ended: the last item's sort key and id, plus
/// the sort it belongs to (a cursor means nothing under another sort).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    sort: SortBy,
    order: Order,
    key: i64,
    id: IncidentId,
}

impl Cursor {
    /// Hex of a small JSON object: opaque to clients, URL-safe, and easy to
    /// read back when debugging.
    fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).expect("a cursor always serializes"))
    }

    fn decode(text: &str) -> Result<Cursor, QueryError> {
        let bytes = hex::decode(text).map_err(|_| {
            QueryError::Cursor("not a cursor this server handed out; use `next` as given".into())
        })?;
        serde_json::from_slice(&bytes).map_err(|_| {
            QueryError::Cursor("not a cursor this server handed out; use `next` as given".into())
        })
    }
}

/// A parsed `GET /incidents` query.
#[derive(Debug, PartialEq)]
pub struct ListQuery {
    pub filter: Filter,
    pub sort: SortBy,
    pub order: Order,
    pub limit: usize,
    cursor: Option<Cursor>,
}

/// One page of incidents, in the requested order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentPage {
    #[schema(value_type = Vec<IncidentSummary>)]
    pub items: Vec<Arc<IncidentSummary>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

impl ListQuery {
    /// Reads the query string's pairs, naming the first parameter that is
    /// unknown, repeated where it may not be, or has an unusable value.
    pub fn parse(pairs: &[(String, String)]) -> Result<ListQuery, QueryError> {
        let mut filter = Filter::default();
        let mut sort = None;
        let mut order = None;
        let mut limit = None;
        let mut cursor = None;
        for (name, value) in pairs {
            let name = name.as_str();
            if value.is_empty() {
                return Err(invalid(name, "must not be empty"));
            }
            match name {
                "status" => {
                    for item in list_items(value) {
                        filter
                            .statuses
                            .push(item.parse().map_err(|m: String| invalid(name, m))?);
                    }
                }
                "severity" => {
                    for item in list_items(value) {
                        filter
                            .severities
                            .push(item.parse().map_err(|m: String| invalid(name, m))?);
                    }
                }
                "service" => once(&mut filter.service, name, value.clone())?,
                "team" => once(&mut filter.team, name, value.clone())?,
                "assignee" => once(&mut filter.assignee, name, value.clone())?,
                "tenant" => once(&mut filter.tenant, name, value.clone())?,
                "label" => {
                    let (k, v) = value
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| invalid(name, format!("{value:?} is not key=value")))?;
                    filter.labels.push((k.to_string(), v.to_string()));
                }
                "q" => once(&mut filter.title_contains, name, value.to_lowercase())?,
                "created_after" => once(&mut filter.created_after, name, time(name, value)?)?,
                "created_before" => once(&mut filter.created_before, name, time(name, value)?)?,
                "resolved_after" => once(&mut filter.resolved_after, name, time(name, value)?)?,
                "resolved_before" => once(&mut filter.resolved_before, name, time(name, value)?)?,
                "sort" => {
                    let by = match value.as_str() {
                        "created" => SortBy::Created,
                        "updated" => SortBy::Updated,
                        "severity" => SortBy::Severity,
                        _ => {
                            return Err(invalid(
                                name,
                                format!("{value:?}: expected created, updated or severity"),
                            ))
                        }
                    };
                    once(&mut sort, name, by)?;
                }
                "order" => {
                    let o = match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => return Err(invalid(name, format!("{value:?}: expected asc or desc"))),
                    };
                    once(&mut order, name, o)?;
                }
                "limit" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            invalid(name, format!("{value:?}: expected 1 to {MAX_LIMIT}"))
                        })?;
                    once(&mut limit, name, n)?;
                }
                "cursor" => once(&mut cursor, name, Cursor::decode(value)?)?,
                other => {
                    return Err(invalid(
                        other,
                        format!("unknown parameter; known ones: {KNOWN_PARAMS}"),
                    ))
                }
            }
        }
        let sort = sort.unwrap_or_default();
        let order = order.unwrap_or_default();
        if let Some(c) = &cursor {
            if c.sort != sort || c.order != order {
                return Err(QueryError::Cursor(
                    "it belongs to another sort or order; keep them the same across pages".into(),
                ));
            }
        }
        Ok(ListQuery {
            filter,
            sort,
            order,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            cursor,
        })
    }

    /// The page of `all` this query asks for.
    pub fn page(&self, all: Vec<Arc<IncidentSummary>>) -> IncidentPage {
        let mut items: Vec<Arc<IncidentSummary>> = all
            .into_iter()
            .filter(|s| self.filter.matches(s) && self.is_after_cursor(s))
            .collect();
        let more = items.len() > self.limit;
        if more {
            // Only the first `limit` need sorting: cut the rest off first.
            items.select_nth_unstable_by(self.limit, |a, b| self.compare(a, b));
            items.truncate(self.limit);
        }
        items.sort_unstable_by(|a, b| self.compare(a, b));
        let next = if more {
            items.last().map(|s| self.cursor_at(s).encode())
        } else {
            None
        };
        IncidentPage { items, next }
    }

    fn key(&self, s: &IncidentSummary) -> i64 {
        match self.sort {
            SortBy::Created => s.created_at.millis(),
            SortBy::Updated => s.updated_at.millis(),
            SortBy::Severity => s.severity as i64,
        }
    }

    /// The listing order: by the sort key, then by id, both flipped for `desc`.
    fn compare(&self, a: &IncidentSummary, b: &IncidentSummary) -> Ordering {
        let ascending = (self.key(a), a.id).cmp(&(self.key(b), b.id));
        match self.order {
            Order::Asc => ascending,
            Order::Desc => ascending.reverse(),
        }
    }

    fn is_after_cursor(&self, s: &IncidentSummary) -> bool {
        let Some(c) = &self.cursor else {
            return true;
        };
        let ascending = (self.key(s), s.id).cmp(&(c.key, c.id));
        match self.order {
            Order::Asc => ascending == Ordering::Greater,
            Order::Desc => ascending == Ordering::Less,
        }
    }

    fn cursor_at(&self, s: &IncidentSummary) -> Cursor {
        Cursor {
            sort: self.sort,
            order: self.order,
            key: self.key(s),
            id: s.id,
        }
    }
}

/// Items of a repeatable parameter that may also be comma-separated.
pub(super) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(invalid(name, "given more than once"));
    }
    *slot = Some(value);
    Ok(())
}

fn time(name: &str, value: &str) -> Result<Timestamp, QueryError> {
    Timestamp::parse_rfc3339(value).map_err(|e| {
        invalid(
            name,
            format!("{value:?} is not an RFC 3339 time such as 2026-11-27T10:00:00Z ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use incidentd_actors::model::Labels;

    use ulid::Ulid;

    use super::*;
    use crate::test_support::{pairs, summary as summary_of};

    fn parse(query: &[(&str, &str)]) -> Result<ListQuery, QueryError> {
        ListQuery::parse(&pairs(query))
    }

    /// Incident `n`: created at second `n % 50` (many ties), updated in
    /// reverse, severities and services cycling.
    fn summary(n: u64) -> Arc<IncidentSummary> {
        let severity = Severity::ALL[(n % 4) as usize];
        let status = [
            IncidentStatus::Triggered,
            IncidentStatus::Acknowledged,
            IncidentStatus::Resolved,
        ][(n % 3) as usize];
        let id = IncidentId(Ulid::from_parts(1_000 + n, u128::from(n)));
        Arc::new(IncidentSummary {
            tenant: if n % 2 == 0 { "acme" } else { "globex" }.into(),
            group_key: format!("g{n}").into(),
            title: format!("Disk Full on host-{n}").into(),
            severity,
            status,
            service: Some(format!("svc{}", n % 5).into()),
            assignee: (n % 7 == 0).then(|| "alice".into()),
            labels: Arc::new(Labels::from([("env".into(), format!("e{}", n % 2).into())])),
            created_at: Timestamp((n % 50) as i64 * 1_000),
            updated_at: Timestamp(1_000_000 - n as i64),
            resolved_at: (status == IncidentStatus::Resolved).then_some(Timestamp(n as i64)),
            ..summary_of(id)
        })
    }

    fn all(count: u64) -> Vec<Arc<IncidentSummary>> {
        (0..count).map(summary).collect()
    }

    /// Follows `next` to the end, returning every id in the order served.
    fn walk(query: &[(&str, &str)], items: &[Arc<IncidentSummary>]) -> Vec<IncidentId> {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = pairs(query);
            if let Some(c) = &cursor {
                q.push(("cursor".into(), c.clone()));
            }
            let page = ListQuery::parse(&q).unwrap().page(items.to_vec());
            seen.extend(page.items.iter().map(|s| s.id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return seen,
            }
        }
    }

    fn sorted_ids(
        items: &[Arc<IncidentSummary>],
        key: impl Fn(&IncidentSummary) -> i64,
    ) -> Vec<IncidentId> {
        let mut v: Vec<_> = items.iter().map(|s| (key(s), s.id)).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    #[test]
    fn defaults_are_created_desc_fifty() {
        let q = parse(&[]).unwrap();
        assert_eq!(
            (q.sort, q.order, q.limit),
            (SortBy::Created, Order::Desc, 50)
        );
        let page = q.page(all(120));
        assert_eq!(page.items.len(), 50);
        let mut expected = sorted_ids(&all(120), |s| s.created_at.millis());
        expected.reverse();
        let ids: Vec<_> = page.items.iter().map(|s| s.id).collect();
        assert_eq!(ids, expected[..50]);
        assert!(page.next.is_some());
    }

    #[test]
    fn pages_return_every_item_once_in_order() {
        let items = all(333);
        type SortKey = fn(&IncidentSummary) -> i64;
        let keys: [(&str, SortKey); 3] = [
            ("created", |s| s.created_at.millis()),
            ("updated", |s| s.updated_at.millis()),
            ("severity", |s| s.severity as i64),
        ];
        for (sort, key) in keys {
            let ascending = sorted_ids(&items, key);
            let asc = walk(&[("sort", sort), ("order", "asc"), ("limit", "40")], &items);
            assert_eq!(asc, ascending, "sort={sort} asc");
            let desc = walk(&[("sort", sort), ("limit", "7")], &items);
            let mut descending = ascending.clone();
            descending.reverse();
            assert_eq!(desc, descending, "sort={sort} desc");
        }
    }

    #[test]
    fn cursor_is_stable_when_incidents_are_added_between_pages() {
        let mut items = all(100);
        let first = parse(&[("sort", "created"), ("order", "asc"), ("limit", "30")])
            .unwrap()
            .page(items.clone());
        // A new incident sorting before the cut, and one after it.
        items.push(summary(1_000)); // created at second 0: before the cut
        items.push(summary(1_049)); // created at second 49: after it
        let next = first.next.unwrap();
        let second = parse(&[
            ("sort", "created"),
            ("order", "asc"),
            ("limit", "1000"),
            ("cursor", &next),
        ])
        .unwrap()
        .page(items.clone());
        let served: HashSet<_> = first.items.iter().map(|s| s.id).collect();
        assert!(second.items.iter().all(|s| !served.contains(&s.id)));
        assert_eq!(first.items.len() + second.items.len(), 101);
        assert_eq!(second.items.last().unwrap().id, summary(1_049).id);
        assert!(second.next.is_none());
    }

    #[test]
    fn filters_combine() {
        let items = all(300);
        let q = parse(&[
            ("status", "triggered,resolved"),
            ("severity", "critical"),
            ("tenant", "acme"),
            ("service", "svc2"),
            ("label", "env=e0"),
            ("q", "DISK full"),
            ("limit", "1000"),
        ])
        .unwrap();
        let got: HashSet<_> = q.page(items.clone()).items.iter().map(|s| s.id).collect();
        let expected: HashSet<_> = items
            .iter()
            .filter(|s| {
                s.status != IncidentStatus::Acknowledged
                    && s.severity == Severity::Critical
                    && &*s.tenant == "acme"
                    && s.service.as_deref() == Some("svc2")
                    && s.labels["env"] == "e0"
            })
            .map(|s| s.id)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected);
    }

    #[test]
    fn time_ranges_are_exclusive_and_resolved_needs_a_resolve() {
        let items = all(100);
        let q = parse(&[
            ("created_after", "1970-01-01T00:00:10Z"),
            ("created_before", "1970-01-01T00:00:13Z"),
            ("limit", "1000"),
        ])
        .unwrap();
        let page = q.page(items.clone());
        // Seconds 11 and 12, each held by two of the hundred.
        assert_eq!(page.items.len(), 4);
        assert!(page
            .items
            .iter()
            .all(|s| [11_000, 12_000].contains(&s.created_at.millis())));
        let resolved = parse(&[
            ("resolved_after", "1970-01-01T00:00:00.050Z"),
            ("resolved_before", "1970-01-01T00:00:00.060Z"),
        ])
        .unwrap()
        .page(items);
        // Resolved ones are n % 3 == 2, resolved at n ms: 53, 56, 59.
        let mut ns: Vec<_> = resolved
            .items
            .iter()
            .map(|s| s.resolved_at.unwrap().millis())
            .collect();
        ns.sort();
        assert_eq!(ns, vec![53, 56, 59]);
    }

    #[test]
    fn assignee_filter_and_title_search_ignore_case() {
        let page = parse(&[("assignee", "alice"), ("q", "HOST-14"), ("limit", "1000")])
            .unwrap()
            .page(all(300));
        let titles: Vec<_> = page.items.iter().map(|s| &*s.title).collect();
        assert_eq!(
            titles,
            vec![
                "Disk Full on host-147",
                "Disk Full on host-140",
                "Disk Full on host-14"
            ]
        );
    }

    fn invalid_param(query: &[(&str, &str)]) -> String {
        match parse(query).unwrap_err() {
            QueryError::Invalid { param, .. } => param,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn invalid_values_name_the_parameter() {
        assert_eq!(invalid_param(&[("status", "open")]), "status");
        assert_eq!(invalid_param(&[("severity", "fatal")]), "severity");
        assert_eq!(invalid_param(&[("limit", "1001")]), "limit");
        assert_eq!(invalid_param(&[("limit", "0")]), "limit");
        assert_eq!(invalid_param(&[("limit", "ten")]), "limit");
        assert_eq!(invalid_param(&[("sort", "title")]), "sort");
        assert_eq!(invalid_param(&[("order", "up")]), "order");
        assert_eq!(
            invalid_param(&[("created_after", "yesterday")]),
            "created_after"
        );
        assert_eq!(invalid_param(&[("label", "novalue")]), "label");
        assert_eq!(
            invalid_param(&[("service", "a"), ("service", "b")]),
            "service"
        );
        assert_eq!(invalid_param(&[("team", "")]), "team");
        assert_eq!(invalid_param(&[("colour", "red")]), "colour");
        let message = ApiError::from(parse(&[("limit", "5000")]).unwrap_err()).message;
        assert!(
            message.contains("`limit`") && message.contains("1000"),
            "{message}"
        );
    }

    #[test]
    fn foreign_or_mismatched_cursors_are_bad_requests() {
        assert!(matches!(
            parse(&[("cursor", "zz")]),
            Err(QueryError::Cursor(_))
        ));
        assert!(matches!(
            parse(&[("cursor", &hex::encode("{\"x\":1}"))]),
            Err(QueryError::Cursor(_))
        ));
        let next = parse(&[("limit", "1")]).unwrap().page(all(3)).next.unwrap();
        assert!(matches!(
            parse(&[("cursor", &next), ("order", "asc")]),
            Err(QueryError::Cursor(_))
        ));
        let error = ApiError::from(QueryError::Cursor("x".into()));
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
