//! Serving over HTTP/1.1 with graceful shutdown and a header read timeout.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::middleware::app;

/// Serves `router` (through [`app`]) on `listener` over HTTP/1.1 until `shutdown`; requests
/// in flight then get up to 10 s. Each connection must send a request's head within
/// `header_read_timeout_ms` of opening or of its last response. Every request's head must
/// frame it as RFC 9112 asks (a `Host`, one `Content-Length` within the body limit:
/// [`super::middleware::framing`]); a connection's first head is screened before hyper reads
/// it ([`super::first_head`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: &crate::http::HttpArgs,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    // Framing inside CORS: a browser's request refused for its framing still gets its CORS
    // headers, so the page sees the problem rather than a network error.
    let router = app(router).layer(axum::middleware::from_fn(super::middleware::framing));
    let router = super::middleware::cors(router, &http.cors_allowed_origins)?;
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut connection_builder = hyper::server::conn::http1::Builder::new();
    connection_builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms))
        .max_headers(super::middleware::HYPER_MAX_HEADERS);
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
        let (service, builder, watcher) = (
            service.clone(),
            connection_builder.clone(),
            connections.watcher(),
        );
        let head_timeout = Duration::from_millis(http.header_read_timeout_ms);
        tokio::spawn(async move {
            let mut stream = stream;
            // Boxed: its state is dropped once screened, not kept in the connection's task.
            let screened = Box::pin(super::first_head::screen(&mut stream, head_timeout)).await;
            let head = match screened {
                super::first_head::FirstHead::Serve(head) => head,
                _ => return,
            };
            let io = super::first_head::Prefixed::new(head, stream);
            let connection =
                watcher.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(io), service));
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
