//! Validates incident events against the JSON Schemas in the repository's
//! `schemas/`, each by the schema its CloudEvents `type` names.
//!
//! The service's unit tests compile this same file (see
//! `src/test_support.rs`), so the files are checked by one validator.

use std::collections::BTreeMap;

use jsonschema::{Registry, Validator};
use serde_json::Value;

/// One compiled validator per event type, e.g. `incidentd.incident.created.v1`.
pub struct EventSchemas {
    by_type: BTreeMap<String, Validator>,
}

impl EventSchemas {
    /// Reads and compiles every schema in `schemas/`; panics naming the
    /// file that is not a valid schema. A file named `<type>.json` is the
    /// schema of event type `<type>`; the others (shared definitions) are
    /// only referred to.
    pub fn load() -> EventSchemas {
        let dir = super::checkout::checkout_dir().join("schemas");
        let mut documents = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("read schemas/") {
            let path = entry.expect("schemas/ entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&path).expect("read a schema");
                let document: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("schemas/{name} is not JSON: {e}"));
                if let Err(e) = jsonschema::meta::validate(&document) {
                    panic!("schemas/{name} is not a valid JSON Schema: {e}");
                }
                documents.insert(name, document);
            }
        }
        // Every file is registered by its `$id`, so the `$ref`s between
        // them resolve without fetching anything.
        let mut registry = Registry::new();
        for (name, document) in &documents {
            let id = document["$id"]
                .as_str()
                .unwrap_or_else(|| panic!("schemas/{name} has no $id"));
            registry = registry
                .add(id, document)
                .unwrap_or_else(|e| panic!("schemas/{name}: {e}"));
        }
        let registry = registry.prepare().expect("schemas/ resolve");
        let by_type = documents
            .iter()
            .filter(|(name, _)| name.starts_with("incidentd.incident."))
            .map(|(name, document)| {
                let validator = jsonschema::options()
                    .with_registry(&registry)
                    .should_validate_formats(true)
                    .build(document)
                    .unwrap_or_else(|e| panic!("schemas/{name} does not compile: {e}"));
                (name.trim_end_matches(".json").to_string(), validator)
            })
            .collect();
        EventSchemas { by_type }
    }

    /// The event types that have a schema.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// Checks one CloudEvent against the schema of its `type`; the error
    /// names the type and every field that does not match.
    pub fn validate(&self, event: &Value) -> Result<(), String> {
        let event_type = event["type"]
            .as_str()
            .ok_or_else(|| format!("no string `type` in {event}"))?;
        let validator = self
            .by_type
            .get(event_type)
            .ok_or_else(|| format!("no schema for event type {event_type:?}"))?;
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{event_type}: {}", errors.join("; ")))
        }
    }
}
