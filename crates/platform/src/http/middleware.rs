//! What wraps every service's routes: the body limit and the 404 problem ([`app`]), the
//! limit on requests in flight ([`limited`]) and request timing for `/metrics` ([`timed`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use tokio::sync::Semaphore;

use super::json::MAX_BODY_BYTES;
use super::problem::Problem;
use crate::metrics::Metrics;

/// A service's routes as served: the body limit, and a problem for unknown endpoints.
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
        metrics.inc("openorder_http_requests_shed_total", &[]);
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

/// Times every request to one of `router`'s routes, from its arrival to its answer, into
/// `openorder_http_request_duration_seconds{method,route,status}` (the route as declared,
/// e.g. `/api/orders/{id}`, so ids do not make new series).
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
    metrics.observe(
        "openorder_http_request_duration_seconds",
        &[
            ("method", method.as_str()),
            ("route", &route),
            ("status", response.status().as_str()),
        ],
        started.elapsed().as_secs_f64(),
    );
    response
}
