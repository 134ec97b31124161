//! The JSON Schemas of outbound incident events (`schemas/` at the
//! repository root, documented in `schemas/README.md`), embedded in the
//! binary and served, so a consumer can fetch the contract from the
//! service whose events it reads.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use crate::sinks::EVENT_TYPE_PREFIX;

/// Media type of a JSON Schema document.
const SCHEMA_JSON: &str = "application/schema+json";

/// One file of `schemas/`.
pub struct SchemaFile {
    pub name: &'static str,
    pub text: &'static str,
}

impl SchemaFile {
    /// The CloudEvents `type` this file describes: its name without
    /// `.json`; `None` for the shared definitions.
    pub fn event_type(&self) -> Option<&'static str> {
        self.name
            .strip_suffix(".json")
            .filter(|stem| stem.starts_with(EVENT_TYPE_PREFIX))
    }
}

macro_rules! schema_file {
    ($name:literal) => {
        SchemaFile {
            name: $name,
            text: include_str!(concat!("../../schemas/", $name)),
        }
    };
}

/// Every file of `schemas/`: the shared definitions, then one schema per
/// event kind (a test checks this list against the folder and the kinds).
pub const SCHEMAS: [SchemaFile; 17] = [
    schema_file!("incident-event.common.v1.json"),
    schema_file!("incidentd.incident.created.v1.json"),
    schema_file!("incidentd.incident.alert_added.v1.json"),
    schema_file!("incidentd.incident.alert_resolved.v1.json"),
    schema_file!("incidentd.incident.acknowledged.v1.json"),
    schema_file!("incidentd.incident.unacknowledged.v1.json"),
    schema_file!("incidentd.incident.ack_timed_out.v1.json"),
    schema_file!("incidentd.incident.escalated.v1.json"),
    schema_file!("incidentd.incident.resolved.v1.json"),
    schema_file!("incidentd.incident.reopened.v1.json"),
    schema_file!("incidentd.incident.assigned.v1.json"),
    schema_file!("incidentd.incident.note_added.v1.json"),
    schema_file!("incidentd.incident.severity_changed.v1.json"),
    schema_file!("incidentd.incident.title_changed.v1.json"),
    schema_file!("incidentd.incident.snoozed.v1.json"),
    schema_file!("incidentd.incident.snooze_expired.v1.json"),
    schema_file!("incidentd.incident.archived.v1.json"),
];

#[derive(Serialize, utoipa::ToSchema)]
pub struct SchemaList {
    pub schemas: Vec<SchemaEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SchemaEntry {
    /// File name, e.g. `incidentd.incident.created.v1.json`.
    pub name: String,
    /// The event type it describes; null for the shared definitions the
    /// others refer to.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Where this server serves it.
    pub url: String,
}

/// The JSON Schemas of incident events: one per event type, and the
/// shared definitions they refer to by `$id`.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas",
    responses((status = 200, description = "Every schema", body = SchemaList)))]
pub async fn list_schemas() -> Json<SchemaList> {
    let schemas = SCHEMAS
        .iter()
        .map(|file| SchemaEntry {
            name: file.name.to_string(),
            event_type: file.event_type().map(str::to_string),
            url: format!("/api/v1/schemas/{}", file.name),
        })
        .collect();
    Json(SchemaList { schemas })
}

/// One JSON Schema (draft 2020-12), as `application/schema+json`.
#[utoipa::path(get, path = "/api/v1/schemas/{name}", tag = "schemas",
    params(("name" = String, Path, description = "File name, e.g. `incidentd.incident.created.v1.json`")),
    responses(
        (status = 200, description = "The schema", content_type = "application/schema+json", body = Object),
        (status = 404, description = "No schema of that name; the message lists the known ones", body = ErrorBody),
    ))]
pub async fn get_schema(Path(name): Path<String>) -> Result<Response, ApiError> {
    let Some(file) = SCHEMAS.iter().find(|file| file.name == name) else {
        let known: Vec<&str> = SCHEMAS.iter().map(|file| file.name).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no schema named {name:?}; known: {}", known.join(", ")),
        ));
    };
    Ok(([(header::CONTENT_TYPE, SCHEMA_JSON)], file.text).into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use incidentd_actors::model::EventKind;
    use serde_json::Value;

    use super::*;
    use crate::sinks::event_type;
    use crate::test_support::event_schemas::EventSchemas;

    #[test]
    fn every_kind_has_a_schema_and_the_table_is_the_folder() {
        let listed: BTreeSet<&str> = SCHEMAS.iter().filter_map(SchemaFile::event_type).collect();
        let kinds: BTreeSet<String> = EventKind::ALL.into_iter().map(event_type).collect();
        assert_eq!(listed, kinds.iter().map(String::as_str).collect());
        let schemas = EventSchemas::load();
        let compiled: BTreeSet<&str> = schemas.types().collect();
        assert_eq!(compiled, listed, "every type's schema compiles");

        let dir = crate::test_support::checkout::checkout_dir().join("schemas");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        let embedded: BTreeSet<String> = SCHEMAS.iter().map(|f| f.name.to_string()).collect();
        assert_eq!(embedded, on_disk, "SCHEMAS lists every file of schemas/");
    }

    #[test]
    fn each_schema_names_its_type_and_its_id() {
        for file in &SCHEMAS {
            let schema: Value = serde_json::from_str(file.text).unwrap();
            assert_eq!(
                schema["$id"],
                format!("https://incidentd.dev/schemas/{}", file.name)
            );
            if let Some(event_type) = file.event_type() {
                assert_eq!(schema["properties"]["type"]["const"], event_type);
                let kind = event_type
                    .strip_prefix(EVENT_TYPE_PREFIX)
                    .and_then(|rest| rest.strip_suffix(".v1"))
                    .unwrap();
                let change = &schema["properties"]["data"]["properties"]["change"];
                assert_eq!(change["properties"]["kind"]["const"], kind);
            }
        }
    }

    #[tokio::test]
    async fn the_list_names_every_schema_with_its_url() {
        let Json(list) = list_schemas().await;
        let types: BTreeSet<String> = list
            .schemas
            .iter()
            .filter_map(|s| s.event_type.clone())
            .collect();
        let kinds: BTreeSet<String> = EventKind::ALL.into_iter().map(event_type).collect();
        assert_eq!(types, kinds);
        assert_eq!(list.schemas.len(), SCHEMAS.len());
        let common = &list.schemas[0];
        assert_eq!(common.name, "incident-event.common.v1.json");
        assert_eq!(common.event_type, None);
        assert_eq!(common.url, "/api/v1/schemas/incident-event.common.v1.json");
    }

    #[tokio::test]
    async fn one_schema_is_served_as_schema_json_and_an_unknown_name_is_404() {
        let name = "incidentd.incident.resolved.v1.json";
        let response = get_schema(Path(name.to_string())).await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], SCHEMA_JSON);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let schema: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            schema["$id"],
            "https://incidentd.dev/schemas/incidentd.incident.resolved.v1.json"
        );

        let error = get_schema(Path("resolved.json".into())).await.unwrap_err();
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        assert!(error.message.contains("resolved.json"), "{}", error.message);
        assert!(error.message.contains(name), "{}", error.message);
    }
}
