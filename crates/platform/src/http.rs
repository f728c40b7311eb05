//! HTTP pieces every service shares: RFC 9457 problem details, a JSON body extractor whose
//! rejections are problems too, health endpoints, a limit on requests in flight, request
//! timing for `/metrics`, and serving with graceful shutdown and a header read timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::FutureProducer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::metrics::Metrics;

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a JSON body may take to arrive once its request's head has: a client trickling
/// its body would otherwise hold one of the requests in flight for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One invalid field: a JSON pointer into the request (or a query parameter name) and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem details body, served as `application/problem+json`.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// `slug` names the problem type (`/problems/<slug>`), stable for machines to match on.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// The problem as a response telling the client to try again in a second
    /// (`Retry-After: 1`): for refusals under load, where nothing was done.
    pub fn retry_in_a_second(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// 422: the request was well-formed JSON but some fields are invalid.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-fields",
            "Invalid request fields",
            detail,
        )
        .with_errors(errors)
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", what)
    }

    /// 400 for a malformed query or path parameter.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            format!("{name}: {message}"),
        )
        .with_errors(vec![FieldError::new(name, message)])
    }

    /// 503 (database or broker away) or 500, logged here once with its cause chain;
    /// the body never leaks internals.
    pub fn internal(err: anyhow::Error) -> Self {
        let unavailable = err
            .chain()
            .filter_map(|e| e.downcast_ref::<sqlx::Error>())
            .any(crate::db::is_transient);
        tracing::error!(error = format!("{err:#}"), "request failed");
        if unavailable {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the database is not reachable; nothing was written, retry later",
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request failed unexpectedly; nothing was written",
            )
        }
    }
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A JSON body extractor whose every rejection is a [`Problem`]: 415 wrong content type,
/// 413 too large, 400 malformed JSON, 422 a field of the wrong type (named by its path).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !(mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("expected Content-Type: application/json, got {content_type:?}"),
            ));
        }
        let body = axum::body::Bytes::from_request(req, state);
        let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, body)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "Request body too slow",
                    format!(
                        "the body did not arrive within {} s",
                        BODY_READ_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "Request body too large",
                        format!("the body must be at most {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable-body",
                        "Unreadable request body",
                        rejection.body_text(),
                    )
                }
            })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decodes a JSON body: syntax errors are 400, type errors 422 naming the field's JSON pointer.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let pointer = pointer_of(err.path());
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::invalid_fields(vec![FieldError::new(pointer, strip_position(&inner))])
            }
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What the health endpoints check.
#[derive(Clone)]
pub struct Health {
    pub db: Database,
    pub producer: FutureProducer,
    /// Keys the consumers wait on: reported, not a reason to be unready (the HTTP
    /// API works; taking the instance out of a load balancer would not help them).
    pub stalls: crate::stalls::Stalls,
}

/// `GET /health/live` (the process answers) and `GET /health/ready` (database and broker
/// answer: 200, else 503). `checks.consumers` in the latter lists the keys the
/// consumers wait on ([`crate::stalls`]); its status is `STALLED` when one waited too long.
pub fn health_router(health: Health) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "UP"})) }),
        )
        .route("/health/ready", get(ready))
        .with_state(health)
}

async fn ready(State(health): State<Health>) -> Response {
    let db = health.db.ping().await;
    let broker = crate::kafka::ping(&health.producer).await;
    let status = |r: &anyhow::Result<()>| match r {
        Ok(()) => serde_json::json!({"status": "UP"}),
        Err(e) => serde_json::json!({"status": "DOWN", "error": format!("{e:#}")}),
    };
    let waiting = health.stalls.report();
    let consumers = serde_json::json!({
        "status": if waiting.iter().any(|w| w.stalled) { "STALLED" } else { "UP" },
        "waiting": waiting,
    });
    let body = serde_json::json!({
        "status": if db.is_ok() && broker.is_ok() { "UP" } else { "DOWN" },
        "checks": {"database": status(&db), "broker": status(&broker), "consumers": consumers},
    });
    let code = if db.is_ok() && broker.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

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

/// Most requests a service's API works on at once, by default (see [`limited`]). Each
/// request in flight costs about 40 KiB (mostly hyper's connection buffers, measured with
/// heaptrack), so 2,048 bound a service's memory under overload to some 80 MiB above its
/// idle ~20 MiB, and admit a stall of 0.4 s at 5,000 orders/s (with 1,024, a 60 s run at
/// that rate refused 549 orders in its slowest seconds, when POSTs took up to 310 ms).
pub const MAX_IN_FLIGHT: u32 = 2048;

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

/// Default of how long a client may take to send a request's head, and how long a
/// kept-alive connection may stay idle between requests, before it is closed (nginx's
/// `client_header_timeout` and Kestrel's `RequestHeadersTimeout` are alike). Without it an
/// idle or trickling connection stays open for ever, holding a socket and ~9 KiB, outside
/// the limit on requests in flight.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;

/// Serves `router` (through [`app`]) on `listener` over HTTP/1.1 until `shutdown`; requests
/// in flight then get up to 10 s. Each connection must send a request's head within
/// `header_read_timeout_ms` of opening or of its last response.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: &crate::config::HttpArgs,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(app(router));
    let mut connection_builder = hyper::server::conn::http1::Builder::new();
    connection_builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, most likely: let connections finish.
                    tracing::warn!(%err, "accepting a connection failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = connections.watch(
            connection_builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone()),
        );
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("HTTP requests still running after {} ms; stopping anyway", drain.as_millis());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        qty: i64,
    }

    #[test]
    fn a_wrong_type_names_the_field_by_json_pointer() {
        let problem = decode_json::<Body>(br#"{"items":[{"qty":1},{"qty":"x"}]}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "/items/1/qty");
    }

    #[tokio::test]
    async fn a_request_beyond_the_limit_is_refused_at_once_and_admitted_again_once_one_finished() {
        use tower::ServiceExt;
        let (entered, mut handler_entered) = tokio::sync::mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Notify::new());
        let handler_release = release.clone();
        let router = Router::new().route(
            "/slow",
            get(move || {
                let (entered, release) = (entered.clone(), handler_release.clone());
                async move {
                    entered.send(()).unwrap();
                    release.notified().await;
                }
            }),
        );
        let metrics = Metrics::default();
        let app = limited(router, 1, metrics.clone());
        let slow = || {
            Request::get("/slow")
                .body(axum::body::Body::empty())
                .unwrap()
        };

        let first = tokio::spawn(app.clone().oneshot(slow()));
        handler_entered.recv().await;
        let refused = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(slow()))
            .await
            .expect("the second request waited instead of being refused")
            .unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "/problems/overloaded");
        assert!(metrics
            .render()
            .contains("openorder_http_requests_shed_total 1"));

        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let second = tokio::spawn(app.oneshot(slow()));
        handler_entered.recv().await;
        release.notify_one();
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_answered_408_request_timeout() {
        use tower::ServiceExt;
        let router = Router::new().route(
            "/orders",
            axum::routing::post(|ApiJson(_body): ApiJson<Body>| async { StatusCode::ACCEPTED }),
        );
        // Headers sent, body never: a stream that stays pending.
        let trickle = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let request = Request::post("/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from_stream(trickle))
            .unwrap();

        let answer = tokio::time::timeout(BODY_READ_TIMEOUT * 2, app(router).oneshot(request))
            .await
            .expect("the request waited for its body beyond the timeout")
            .unwrap();

        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "/problems/request-timeout");
    }

    /// Reads until the server closes the connection, for at most 10 s.
    async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received));
        match read.await {
            Ok(Ok(_)) => received,
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => received,
            Ok(Err(err)) => panic!("reading failed: {err}"),
            Err(_) => panic!("the connection was still open after 10 s"),
        }
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_head_in_time_is_closed_and_a_prompt_one_is_served()
    {
        use tokio::io::AsyncWriteExt as _;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let http = crate::config::HttpArgs {
            header_read_timeout_ms: 300,
            ..Default::default()
        };
        let shutdown = CancellationToken::new();
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, router, &http, shutdown, Duration::from_secs(10)).await }
        });

        // Silent, and trickling: half a request head, then nothing.
        for sent in [&b""[..], b"GET /ping HTTP/1.1\r\nHost: a"] {
            let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
            client.write_all(sent).await.unwrap();
            let opened = std::time::Instant::now();
            read_until_closed(&mut client).await;
            assert!(
                opened.elapsed() >= Duration::from_millis(250),
                "closed after {:?}, before the timeout",
                opened.elapsed()
            );
        }

        // Prompt: served, and closed only when it asks.
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .write_all(b"GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let received = String::from_utf8(read_until_closed(&mut client).await).unwrap();
        assert_eq!(received.matches("HTTP/1.1 200 OK").count(), 2, "{received}");
        assert_eq!(received.matches("pong").count(), 2, "{received}");

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serving did not stop on shutdown")
            .unwrap()
            .unwrap();
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let problem = decode_json::<Body>(br#"{"items":["#).unwrap_err();
        assert_eq!(problem.status, 400);
    }
}
