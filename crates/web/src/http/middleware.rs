//! What wraps every service's routes: the body limit, the request-line and header limits,
//! and a problem for every error answer, the router's own included ([`app`]); the framing
//! RFC 9112 asks of every request served over a connection ([`framing`]); CORS
//! ([`cors`]); the limit on requests in flight ([`limited`]) and request timing for
//! `/metrics` ([`timed`]).

mod request_framing;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;

use super::json::MAX_BODY_BYTES;
use super::problem::Problem;
use telemetry::metrics::Metrics;

pub(super) use request_framing::{framing, misframed};

/// Longest request target (path and query) served; a longer one is `414 /problems/uri-too-long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers served; more are `431 /problems/headers-too-large`.
pub const MAX_HEADERS: usize = 100;
/// Most headers hyper itself takes (past it, its own answer is a bare `431`): room above
/// [`MAX_HEADERS`], so that the router and [`super::first_head`] answer with a problem.
pub const HYPER_MAX_HEADERS: usize = 1024;

/// `414 /problems/uri-too-long`; `target`: about how long the request's was.
pub(super) fn uri_too_long(target: usize) -> Problem {
    Problem::new(
        StatusCode::URI_TOO_LONG,
        "uri-too-long",
        "Request target too long",
        format!("the path and query must be at most {MAX_URI_BYTES} bytes, got about {target}"),
    )
}

/// `431 /problems/headers-too-large`, saying what was too much.
pub(super) fn headers_too_large(what: String) -> Problem {
    Problem::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers-too-large",
        "Request headers too large",
        format!(
            "at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes together are served; {what}"
        ),
    )
}

/// Largest total of a request's header names and values; more is `431` too.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A service's routes as served: the body limit, the request-line and header limits, and
/// an RFC 9457 problem for every error answer (unknown endpoint 404, wrong method 405 with
/// its `Allow`, a path segment that does not parse 400, …), never an empty or plain-text one.
pub fn app(router: Router) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such endpoint",
            )
        })
        .layer(axum::middleware::from_fn(edge))
}

/// Refuses what is too large before routing, and turns the router's and extractors' bare
/// error answers into problems.
async fn edge(request: Request, next: axum::middleware::Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return uri_too_long(target).into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        let got = format!("got {} of {header_bytes}", headers.len());
        return headers_too_large(got).into_response();
    }
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Bare answers are axum's own (a few hundred bytes at most); bounded all the same.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let problem = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            Problem::new(
                status,
                "method-not-allowed",
                "Method not allowed",
                format!("{method} is not allowed here; allowed: {allowed}"),
            )
        }
        StatusCode::BAD_REQUEST => {
            Problem::new(status, "invalid-parameter", "Invalid parameter", text)
        }
        _ => {
            let title = status.canonical_reason().unwrap_or("Error");
            let slug = title.to_ascii_lowercase().replace(' ', "-");
            let detail = if text.is_empty() {
                title.to_string()
            } else {
                text
            };
            Problem::new(status, &slug, title, detail)
        }
    };
    let mut answer = problem.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

/// CORS for `origins` (`*`: any): preflights answered, the API's own headers allowed and
/// exposed. No origins: `router` unchanged (no cross-origin access).
pub fn cors(router: Router, origins: &[String]) -> anyhow::Result<Router> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(router);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| anyhow::anyhow!("--cors-allowed-origins: {o:?} is not an origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("traceparent"),
            header::HeaderName::from_static("tracestate"),
            header::HeaderName::from_static("prefer"),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("idempotent-replayed"),
            header::HeaderName::from_static("preference-applied"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    Ok(router.layer(layer))
}

/// Answers a request to one of `router`'s routes at once with `503 /problems/overloaded`
/// (and `Retry-After: 1`) while `limit` others are in flight, counting each in
/// `openorder_http_requests_shed_total`. Past the rate a service can answer, waiting
/// requests only pile up (memory grows with them and every answer comes later); a quick
/// refusal keeps the admitted ones fast and tells the client when to come back.
pub fn limited(router: Router, limit: u32, metrics: Metrics) -> Router {
    let permits = Arc::new(Semaphore::new(limit as usize));
    router.route_layer(axum::middleware::from_fn_with_state(
        (permits, metrics),
        shed_beyond_limit,
    ))
}

async fn shed_beyond_limit(
    State((permits, metrics)): State<(Arc<Semaphore>, Metrics)>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = permits.try_acquire_owned() else {
        metrics.inc(&telemetry::catalogue::HTTP_REQUESTS_SHED, &[]);
        return overloaded();
    };
    next.run(request).await
}

/// 503 with `Retry-After: 1`: the service is answering as many requests as it takes at once.
fn overloaded() -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "Too many requests at once",
        "the service is working on as many requests as it takes at once; nothing was done, retry in a second",
    )
    .retry_in_a_second()
}

/// Put on a response (as an extension) by a handler that held its answer back because the
/// client asked it to (`Prefer: wait`, RFC 7240): how long it waited. [`timed`] leaves
/// that time out, so a request's duration is the service's work, and a client that asks
/// to wait for a decision does not read as a slow service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Waited(pub std::time::Duration);

/// Times every request to one of `router`'s routes, from its arrival to its answer, into
/// `openorder_http_request_duration_seconds{method,route,status}` (the route as declared,
/// e.g. `/api/orders/{id}`, so ids do not make new series), less the time a handler waited
/// because the client asked it to ([`Waited`]).
pub fn timed(router: Router, metrics: Metrics) -> Router {
    router.route_layer(axum::middleware::from_fn_with_state(metrics, time_request))
}

async fn time_request(
    State(metrics): State<Metrics>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    let waited = response
        .extensions()
        .get::<Waited>()
        .map_or(std::time::Duration::ZERO, |waited| waited.0);
    metrics.observe(
        &telemetry::catalogue::HTTP_REQUEST_DURATION,
        &[
            ("method", method.as_str()),
            ("route", &route),
            ("status", response.status().as_str()),
        ],
        started.elapsed().saturating_sub(waited).as_secs_f64(),
    );
    response
}

/// With traces on ([`telemetry`]), every request to one of `router`'s routes is a
/// SERVER span named `<method> <route>` (semantic conventions 1.37: `http.request.method`,
/// `http.route`, `url.path`, `http.response.status_code`, `error.type` on a 5xx), the child
/// of the caller's `traceparent` when it sent one, else a new trace.
pub fn traced(router: Router, service: &'static str) -> Router {
    router.route_layer(axum::middleware::from_fn(move |request, next| {
        trace_request(service, request, next)
    }))
}

async fn trace_request(
    service: &'static str,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !telemetry::traces_enabled() {
        return next.run(request).await;
    }
    let parent = telemetry::parent_or_root(telemetry::context_from(
        request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    ));
    if telemetry::left_out(&parent) {
        // The trace is left out by the sampler (the caller's, or this new one): a bare
        // span, recorded by no one, carries its context on to what the request causes.
        let bare = telemetry::left_out_span(parent);
        return next.run(request).instrument(bare).await;
    }
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.server",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        openorder.service = service,
        http.request.method = %method,
        http.route = %route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "ERROR");
    }
    response
}
