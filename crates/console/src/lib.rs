//! The console: OpenOrder seen and worked from a browser (port 8081). It knows the system's
//! topics, events and services, so besides browsing topics it follows an order through every
//! topic and service, lists dead letters with their reasons and replays them, and shows the
//! whole flow live.
//!
//! - reads topics straight from the brokers, read-only ([`records`]);
//! - acts only through the services' own APIs, as the signed-in operator ([`services`],
//!   [`session`]), so every check of theirs applies and dead letters are replayed by the
//!   code `openorder dlt` runs;
//! - renders every page on the server ([`pages`], escaped by `maud`), with a little script
//!   for what updates live ([`live`]: server-sent events), and answers the same data as JSON
//!   under `/api` ([`api`]);
//! - keeps the overview's figures of the last minutes (consumers' lag, the outboxes' and the
//!   oldest PENDING order's age, dead letters kept), sampled in the background from the
//!   services' `/metrics` and the brokers, and charts them on the overview with an estimate
//!   of when each backlog clears ([`history`]);
//! - serves HTTP or, given a certificate, HTTPS only, and knows each request's client and
//!   whether it came over HTTPS, directly or through a trusted proxy ([`transport`]); limits
//!   sign-in attempts per client ([`sign_in_limit`]).
//!
//! What it shows is gathered, without HTML, by the `console_data` crate, and how it is
//! reached is the `console_http` crate's; their modules are re-exported here ([`records`],
//! [`services`], [`timeline`], [`history`]; [`transport`], [`session`], [`sign_in_limit`],
//! [`form`]).
//!
//! `openorder up` serves it; `openorder console` runs it alone against any Kafka-API cluster.

pub mod api;
pub mod live;
pub mod pages;

pub use console_data::{blocking, history, records, services, timeline};
pub use console_http::{form, session, sign_in_limit, transport};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use platform::auth::operators::{Entry, Operators};
use platform::http::Problem;
use platform::kafka::BrokerArgs;
use tokio_util::sync::CancellationToken;

/// `openorder console`'s flags.
#[derive(Args, Clone, Debug)]
pub struct ConsoleArgs {
    /// Address the console listens on.
    #[arg(
        long,
        env = "OPENORDER_CONSOLE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,
    /// order-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_ORDER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub order_url: String,
    /// inventory-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_INVENTORY_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub inventory_url: String,
    /// notification-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_NOTIFICATION_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub notification_url: String,
    /// File of operator token hashes (as the services take it): every page then needs an
    /// operator to sign in with one of its tokens.
    #[arg(long, env = "OPENORDER_OPERATOR_TOKENS_FILE")]
    pub operator_tokens_file: Option<PathBuf>,
    /// Operator token hash, `<name>=sha256:<hex>`, repeatable (environment: comma-separated).
    #[arg(long = "operator-token-hash", env = "OPENORDER_OPERATOR_TOKEN_HASHES", value_delimiter = ',', value_parser = Entry::parse, hide_short_help = true)]
    pub operator_token_hashes: Vec<Entry>,
    /// HTTPS, and a proxy in front.
    #[command(flatten)]
    pub transport: transport::TransportArgs,
    /// How often the overview's charts are sampled.
    #[command(flatten)]
    pub history: history::HistoryArgs,
    /// The brokers it reads (the console only reads: no topic, consumer or retry settings).
    #[command(flatten)]
    pub kafka: BrokerArgs,
}

/// What every handler shares.
pub struct Console {
    pub readers: records::Readers,
    pub services: services::Services,
    pub sessions: session::Sessions,
    pub operators: Operators,
    pub live: live::Live,
    /// The live tails open, one reader per topic ([`live::Tails`]).
    pub tails: live::Tails,
    /// The overview's figures over the last minutes, for its charts.
    pub history: history::History,
    /// Given a certificate and key, the console serves HTTPS only, with this.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Whether a proxy's `X-Forwarded-Proto` and `X-Forwarded-For` are believed.
    pub trust_forwarded_headers: bool,
    /// Sign-in attempts per client.
    pub sign_in_limit: sign_in_limit::SignInLimit,
    /// Cancelled when the console stops: its event streams end then.
    pub stopping: CancellationToken,
}

pub type Shared = Arc<Console>;

impl Console {
    /// The console `args` describe; refuses a TLS certificate without its key (or a key
    /// without its certificate), and files that cannot be used.
    pub async fn new(args: &ConsoleArgs) -> anyhow::Result<Shared> {
        let tls = args.transport.tls()?;
        let operators = Operators::load(
            args.operator_token_hashes.clone(),
            args.operator_tokens_file.clone(),
        )
        .await?;
        Ok(Arc::new(Self {
            readers: records::Readers::new(args.kafka.clone()),
            services: services::Services::new(
                &args.order_url,
                &args.inventory_url,
                &args.notification_url,
            )?,
            sessions: session::Sessions::default(),
            operators,
            live: live::Live::default(),
            tails: live::Tails::default(),
            history: history::History::new(args.history.console_history_every),
            tls,
            trust_forwarded_headers: args.transport.console_trust_forwarded_headers,
            sign_in_limit: sign_in_limit::SignInLimit::default(),
            stopping: CancellationToken::new(),
        }))
    }

    /// The deployment's topic prefix.
    pub fn prefix(&self) -> &str {
        self.readers.kafka().topic_prefix.as_str()
    }

    /// `https` when the console serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether an operator must sign in.
    pub fn needs_sign_in(&self) -> bool {
        !self.operators.is_unconfigured()
    }
}

impl console_data::Sources for Console {
    fn services(&self) -> &services::Services {
        &self.services
    }

    fn readers(&self) -> &records::Readers {
        &self.readers
    }
}

impl history::Sampled for Console {
    fn history(&self) -> &history::History {
        &self.history
    }
}

/// Every route of the console.
pub fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/live", get(live::stream))
        .route("/topics", get(pages::topics::list))
        .route("/topics/{topic}", get(pages::topics::browse))
        .route("/topics/{topic}/tail", get(live::tail))
        .route("/orders", get(pages::orders::find))
        .route("/orders/{id}", get(pages::orders::timeline))
        .route("/stuck", get(pages::stuck::list))
        .route("/dead-letters", get(pages::dead_letters::list))
        .route("/dead-letters/replay", post(pages::dead_letters::replay))
        .route("/dead-letters/faults", post(pages::dead_letters::faults))
        .route("/dead-letters/redrive", post(pages::dead_letters::redrive))
        .route(
            "/dead-letters/edit",
            get(pages::dead_letters::edit_form).post(pages::dead_letters::edit),
        )
        .route("/stock", get(pages::stock::list).post(pages::stock::set))
        .route("/try", get(pages::try_it::form).post(pages::try_it::place))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/console.css", get(pages::assets::css))
        .route("/console.js", get(pages::assets::js))
        .route("/health/ready", get(|| async { "ready" }))
        .nest("/api", api::router())
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            with_session,
        ))
        .with_state(console)
}

/// Finds or opens the request's session, asks for a signed-in one where the console needs
/// it, refuses a POST from another site, and keeps a new session's cookie (`Secure` when
/// the request came over HTTPS). Every request it passes on carries its [`transport::Client`].
async fn with_session(State(console): State<Shared>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let client = transport::Client::of(
        peer,
        request.headers(),
        console.tls.is_some(),
        console.trust_forwarded_headers,
    );
    request.extensions_mut().insert(client);
    let path = request.uri().path().to_string();
    if matches!(
        path.as_str(),
        "/console.css" | "/console.js" | "/health/ready"
    ) {
        // No session for what needs none (a health probe would open one each time).
        return next.run(request).await;
    }
    let found = console.sessions.of(request.headers());
    let fresh = found.is_none();
    let session = found.unwrap_or_else(|| console.sessions.open());
    if request.method() == Method::POST && !session::same_origin(request.headers()) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "cross-site-request",
            "Cross-site request",
            "the console takes POSTs from its own pages only",
        )
        .into_response();
    }
    let mut response =
        if console.needs_sign_in() && session.operator.is_none() && path != "/sign-in" {
            if path.starts_with("/api/") || request.method() != Method::GET {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "sign-in-required",
                    "Sign in required",
                    "sign in at /sign-in with an operator token first",
                )
                .into_response()
            } else {
                let target = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                Redirect::to(&format!("/sign-in?next={}", pages::encode(&target))).into_response()
            }
        } else {
            request.extensions_mut().insert(session.clone());
            next.run(request).await
        };
    if fresh && !response.headers().contains_key(header::SET_COOKIE) {
        if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&session, client.https)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Serves the console on `listener` until `shutdown`: over HTTPS only when it has a
/// certificate.
pub async fn serve(
    console: Shared,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    console.operators.spawn_reload(shutdown.clone());
    let stopping = console.stopping.clone();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        signal.cancelled().await;
        stopping.cancel();
    });
    spawn_sign_in_summaries(console.clone(), shutdown.clone());
    history::spawn(&console, shutdown.clone());
    let tls = console.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    transport::serve_connections(
        listener,
        router(console),
        tls,
        shutdown,
        std::time::Duration::from_secs(2),
    )
    .await
}

/// Logs, every 10 s until `stop`, the sign-in refusals summed up per client
/// ([`sign_in_limit::SignInLimit::due`]): one line per client a minute at most.
fn spawn_sign_in_summaries(console: Shared, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
            }
            for (source, refused) in console.sign_in_limit.due(std::time::Instant::now()) {
                tracing::warn!(
                    client = %source,
                    refused,
                    "{refused} sign-in attempts refused from {source} in the last minute"
                );
            }
        }
    });
}
