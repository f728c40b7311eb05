//! Each service's OpenAPI 3.1 document and a page to read it: the service's own paths
//! (annotated on its handlers, collected by its `Api`), plus what every service serves
//! (health, metrics, status), the problem details every error answers with, and the two
//! credentials of [`crate::auth`]. Served at `GET /openapi.json` and `GET /docs` (a page in
//! the binary that renders the document, no network needed); `docs/api/` holds the same
//! documents, kept equal by a test.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::problem::{FieldError, Problem};
use super::problems_doc::OperatorOnly;

/// The security scheme of operator tokens.
pub const OPERATOR: &str = "operatorToken";
/// The security scheme of customers' JWTs.
pub const CUSTOMER: &str = "customerJwt";

/// What every service serves. These functions carry the documentation only: the handlers
/// are in [`super::health`] and `runtime::service`.
#[derive(OpenApi)]
#[openapi(
    paths(live, ready, metrics, status),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "health", description = "Open to anyone, for probes and load balancers."),
        (name = "operations", description = "For operators: metrics and status."),
    )
)]
struct Shared;

/// The process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "`{\"status\":\"UP\"}`", body = serde_json::Value)))]
#[allow(dead_code)]
fn live() {}

/// The database and the broker answer; `checks.consumers` lists keys the consumers wait on.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "Ready: every check UP", body = serde_json::Value),
    (status = 503, description = "Not ready: a check is DOWN, with its error", body = serde_json::Value),
))]
#[allow(dead_code)]
fn ready() {}

/// Counters, gauges and latency histograms in Prometheus' text format (for operators when
/// the service runs with `--protect-metrics`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("operatorToken" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "Protected, and no valid operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Protected, and a customer's token", body = Problem, content_type = "application/problem+json"),
    ))]
#[allow(dead_code)]
fn metrics() {}

/// Consumer lag per assigned partition and the outbox's backlog.
#[utoipa::path(get, path = "/admin/status", tag = "operations",
    security(("operatorToken" = [])),
    responses(
        (status = 200, description = "Consumers and outbox", body = serde_json::Value),
        OperatorOnly,
        (status = 503, description = "The database or broker did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
#[allow(dead_code)]
fn status() {}

/// `service`'s document with what every service shares added.
pub fn document(mut service: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    service.merge(Shared::openapi());
    let components = service.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        OPERATOR,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An operator token (`oo_…`, see `openorder token new`; `openorder up` keeps one in its data directory)."))
                .build(),
        ),
    );
    components.add_security_scheme(
        CUSTOMER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("A JWT from the configured OpenID Connect issuer; the user id is its `sub` claim (`--oidc-user-claim`). Without `--oidc-issuer` customer routes take no credential."))
                .build(),
        ),
    );
    service
}

/// The document as served and committed: pretty JSON and a final newline.
pub fn to_json(document: &utoipa::openapi::OpenApi) -> String {
    document
        .to_pretty_json()
        .expect("an OpenAPI document is JSON")
        + "\n"
}

/// `GET /openapi.json` and `GET /docs`, open to anyone.
pub fn routes(document: &utoipa::openapi::OpenApi) -> Router {
    let json = std::sync::Arc::new(to_json(document));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/docs", get(docs))
}

async fn docs() -> Response {
    Html(include_str!("docs.html")).into_response()
}
