//! While a service starts: its port answers at once, and it says what it waits for.
//!
//! A service binds its port first, then connects its database and its Kafka brokers,
//! either of which may be away (started later, restarting, unreachable). Meanwhile
//! [`Starting`] serves the port: `GET /health/live` 200, `GET /health/ready` 503 naming
//! what start-up waits for and why, anything else a `503` problem (`/problems/starting`,
//! `Retry-After`). Each wait ([`Starting::until`]) tries again until it works or the
//! service is stopped, logs what it waits for at its first failure and then every
//! [`LOG_EVERY`], and returns at once on shutdown (the service then exits 0: being
//! stopped while waiting is not a failure).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use web::http::Problem;

/// How often a wait that goes on is logged again.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Longest pause between two tries of a dependency.
const RETRY_AT_MOST: Duration = Duration::from_secs(2);

/// The port of a starting service, served until [`Starting::close`].
pub struct Starting {
    service: &'static str,
    waiting: Arc<Mutex<String>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Starting {
    /// Serves `listener` (a second handle on its socket: `listener` itself stays the
    /// caller's, for the service's own server once started).
    pub fn open(service: &'static str, listener: &TcpListener) -> anyhow::Result<Self> {
        use std::os::fd::AsFd;
        let socket = listener.as_fd().try_clone_to_owned()?;
        let socket = std::net::TcpListener::from(socket);
        socket.set_nonblocking(true)?;
        let socket = TcpListener::from_std(socket)?;
        let waiting = Arc::new(Mutex::new("start-up".to_string()));
        let stop = CancellationToken::new();
        let router = router(waiting.clone());
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(socket, router)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::warn!(error = %err, "the start-up server stopped");
            }
        });
        Ok(Self {
            service,
            waiting,
            stop,
            task,
        })
    }

    /// Says what start-up waits for now (`/health/ready` shows it).
    pub fn waiting_for(&self, what: impl Into<String>) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
    }

    /// Tries `attempt` until it succeeds (its value) or `shutdown` (`None`). `what` names
    /// the dependency (`the database postgres://…`); each failure's error says why, shown
    /// on `/health/ready` and logged at the first failure and then every [`LOG_EVERY`].
    pub async fn until<T, E, F, Fut>(
        &self,
        what: &str,
        shutdown: &CancellationToken,
        mut attempt: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let began = tokio::time::Instant::now();
        let mut logged: Option<tokio::time::Instant> = None;
        let mut tries = 0u32;
        loop {
            self.waiting_for(format!("waiting for {what}"));
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return None,
                outcome = attempt() => outcome,
            };
            match outcome {
                Ok(value) => {
                    if logged.is_some() {
                        tracing::info!(
                            service = self.service,
                            after_s = began.elapsed().as_secs(),
                            "{what} answers; starting"
                        );
                    }
                    return Some(value);
                }
                Err(err) => {
                    let reason = format!("waiting for {what}: {err}");
                    if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                        self.log_wait(&reason, began.elapsed());
                        logged = Some(tokio::time::Instant::now());
                    }
                    self.waiting_for(reason);
                }
            }
            tries += 1;
            let pause = (Duration::from_millis(250) * tries).min(RETRY_AT_MOST);
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One line for a wait that goes on.
    fn log_wait(&self, reason: &str, waited: Duration) {
        tracing::warn!(
            service = self.service,
            waited_s = waited.as_secs(),
            "{reason}; trying again until it answers"
        );
    }

    /// Stops serving the port (within a second): the service's own server takes it over;
    /// connections arriving meanwhile wait in the socket's backlog.
    pub async fn close(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

fn router(waiting: Arc<Mutex<String>>) -> Router {
    let ready = move || {
        let waiting = waiting.lock().unwrap_or_else(|e| e.into_inner()).clone();
        async move {
            let body = serde_json::json!({
                "status": "DOWN",
                "checks": {"startup": {"status": "STARTING", "waiting": waiting}},
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    };
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "UP"})) }),
        )
        .route("/health/ready", get(ready))
        .fallback(|| async {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "Starting",
                "the service is starting and waits for its database or Kafka brokers (see /health/ready); retry shortly",
            )
            .retry_after(5)
            .into_response()
        })
}
