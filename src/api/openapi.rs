//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes so it cannot drift from the code, served at `/openapi.json`
//! with Swagger UI at `/docs`.
//!
//! A new endpoint (here or in `src/ingest/`) gets a `#[utoipa::path]` on its
//! handler and one line in `paths(...)` below, e.g.
//! `crate::ingest::http::alertmanager_v2,`; its body types are picked up
//! from the attribute.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{commands, incidents, schemas, stream, subscriptions};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "incidentd",
        description = "Incident management: alerts in (Alertmanager, PagerDuty Events v2, native JSON), incidents with escalation out. Every change answers once it is stored.",
    ),
    paths(
        incidents::list_incidents,
        incidents::create_incident,
        incidents::get_incident,
        incidents::get_timeline,
        commands::update,
        commands::lifecycle,
        commands::snooze,
        commands::assign,
        commands::add_note,
        stream::events,
        schemas::list_schemas,
        schemas::get_schema,
        subscriptions::create,
        subscriptions::list,
        subscriptions::get,
        subscriptions::delete,
        subscriptions::deliveries,
        crate::ingest::http::alertmanager_v2,
        crate::ingest::http::alertmanager_webhook,
        crate::ingest::http::native,
        crate::ingest::http::pagerduty_enqueue,
    ),
    // Path parameters are not collected automatically; their schemas are listed.
    components(schemas(commands::Lifecycle)),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "incidents", description = "List, read and open incidents"),
        (name = "commands", description = "Change an incident; answers with its summary once stored"),
        (name = "events", description = "Live incident events (Server-Sent Events)"),
        (name = "schemas", description = "JSON Schemas of the incident events sent to Kafka and Pulsar topics"),
        (name = "subscriptions", description = "Webhooks that receive incident events"),
        (name = "ingest", description = "Alerts in, in the wire formats alerting tools speak"),
    ),
)]
pub struct ApiDoc;

/// Declares the `Authorization: Bearer <token>` scheme the server asks for
/// when `server.auth_tokens` is set.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
