//! Which events an SSE client asked for, and where it resumes.

use incidentd_actors::model::{EventKind, IncidentEvent};

use crate::bus::EventFilter;

use super::error::ApiError;
use super::list_query::list_items;

/// The `GET /events` query.
#[derive(Debug, Default, PartialEq)]
pub struct StreamQuery {
    pub filter: EventFilter,
    /// Fallback for clients that cannot send the `Last-Event-ID` header.
    pub last_event_id: Option<String>,
}

impl StreamQuery {
    /// Reads the query string's pairs; a bad one is 422 naming it.
    pub fn parse(pairs: &[(String, String)]) -> Result<StreamQuery, ApiError> {
        let invalid = |param: &str, message: String| {
            ApiError::unprocessable(format!("query parameter `{param}`: {message}"))
        };
        let mut query = StreamQuery::default();
        for (name, value) in pairs {
            let name = name.as_str();
            if value.is_empty() {
                return Err(invalid(name, "must not be empty".into()));
            }
            let single = |slot: &mut Option<String>| match slot {
                Some(_) => Err(invalid(name, "given more than once".into())),
                None => {
                    *slot = Some(value.clone());
                    Ok(())
                }
            };
            match name {
                "tenant" => single(&mut query.filter.tenant)?,
                "service" => single(&mut query.filter.service)?,
                "last_event_id" => single(&mut query.last_event_id)?,
                "severity" => {
                    for item in list_items(value) {
                        query
                            .filter
                            .severities
                            .push(item.parse().map_err(|m| invalid(name, m))?);
                    }
                }
                "type" => {
                    for item in list_items(value) {
                        let kind = EventKind::parse(item).ok_or_else(|| {
                            let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                            invalid(
                                name,
                                format!("unknown event type {item:?}; known: {}", known.join(", ")),
                            )
                        })?;
                        query.filter.kinds.push(kind);
                    }
                }
                other => return Err(invalid(
                    other,
                    "unknown parameter; known ones: tenant, service, severity, type, last_event_id"
                        .into(),
                )),
            }
        }
        Ok(query)
    }

    pub fn matches(&self, event: &IncidentEvent) -> bool {
        self.filter.matches(event)
    }
}

#[cfg(test)]
mod tests {

    use incidentd_actors::model::{Change, IncidentId, IncidentSummary, Severity};

    use super::*;
    use crate::test_support::{event as test_event, pairs, summary};

    fn event(
        tenant: &str,
        service: Option<&str>,
        severity: Severity,
        change: Change,
    ) -> IncidentEvent {
        let summary = IncidentSummary {
            tenant: tenant.into(),
            service: service.map(std::sync::Arc::from),
            severity,
            ..summary(IncidentId(ulid::Ulid::from_parts(1, 1)))
        };
        test_event(summary, 1, change)
    }

    #[test]
    fn every_filter_must_match() {
        let q = StreamQuery::parse(&pairs(&[
            ("tenant", "acme"),
            ("service", "db"),
            ("severity", "critical,error"),
            ("type", "created"),
            ("type", "resolved"),
        ]))
        .unwrap();
        assert_eq!(
            q.filter.kinds,
            vec![EventKind::Created, EventKind::Resolved]
        );
        let created = Change::Created { fingerprint: None };
        assert!(q.matches(&event("acme", Some("db"), Severity::Error, created.clone())));
        assert!(!q.matches(&event(
            "other",
            Some("db"),
            Severity::Error,
            created.clone()
        )));
        assert!(!q.matches(&event("acme", None, Severity::Error, created.clone())));
        assert!(!q.matches(&event("acme", Some("db"), Severity::Info, created)));
        assert!(!q.matches(&event(
            "acme",
            Some("db"),
            Severity::Error,
            Change::Acknowledged
        )));
        assert!(StreamQuery::default().matches(&event(
            "x",
            None,
            Severity::Info,
            Change::Acknowledged
        )));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (query, param) in [
            (vec![("type", "exploded")], "`type`"),
            (vec![("severity", "fatal")], "`severity`"),
            (vec![("tenant", "a"), ("tenant", "b")], "`tenant`"),
            (vec![("colour", "red")], "`colour`"),
        ] {
            let e = StreamQuery::parse(&pairs(&query)).unwrap_err();
            assert_eq!(e.status.as_u16(), 422);
            assert!(e.message.contains(param), "{}", e.message);
        }
    }
}
