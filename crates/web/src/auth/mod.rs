//! Who may call what. Two kinds of caller, each with its own credential, both sent as
//! `Authorization: Bearer <token>`:
//! - **operators** (stock, faults, dead letters, status; metrics when protected): static
//!   tokens of which a service keeps only hashes ([`operators`]), several at once so that
//!   they can be rotated;
//! - **customers** (the order, notification and contact API): JWTs from an OpenID Connect
//!   issuer ([`oidc`]); the user id comes from a claim, and a customer sees and changes only
//!   what is theirs. An operator token works on the customer API too (support staff).
//!
//! Either kind may be left unconfigured: its routes are then open to anyone who can connect
//! ([`Caller::Anyone`]). That is allowed only on loopback, or when told so with
//! `--insecure-no-auth` (a gateway in front authenticates): [`Auth::start`] refuses a
//! service bound elsewhere. Health endpoints are always open.
//!
//! A refused request is answered before any handler runs (401 without or with a bad
//! credential, 403 with one that may not do this), as problem details, so nothing is
//! written for it. Every state-changing request by an operator is logged with the
//! operator's name.

pub mod oidc;
pub mod operators;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Args;

use crate::http::Problem;
use oidc::{Oidc, OidcSettings, Refusal};
use operators::{Entry, Operators};

/// The authentication flags every service takes (within [`crate::http::HttpArgs`]).
#[derive(Args, Clone, Debug, Default)]
pub struct AuthArgs {
    /// File of operator token hashes, one `<name>=sha256:<hex>` per line (`openorder token
    /// new` makes one); re-read when it changes. Operator routes then need one of its tokens.
    #[arg(long, env = "OPENORDER_OPERATOR_TOKENS_FILE")]
    pub operator_tokens_file: Option<PathBuf>,

    /// Operator token hash, `<name>=sha256:<hex>`, repeatable (environment: comma-separated).
    #[arg(long = "operator-token-hash", env = "OPENORDER_OPERATOR_TOKEN_HASHES", value_delimiter = ',', value_parser = Entry::parse)]
    pub operator_token_hashes: Vec<Entry>,

    /// `/metrics` needs an operator token too (by default it is open, as scrapers expect).
    #[arg(long, env = "OPENORDER_PROTECT_METRICS")]
    pub protect_metrics: bool,

    /// OpenID Connect issuer of customers' tokens (its `iss`), e.g.
    /// `https://login.example.com/realms/shop`. Customer routes then need a JWT from it.
    #[arg(long, env = "OPENORDER_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,

    /// The audience (`aud`) customers' tokens must be issued for.
    #[arg(long, env = "OPENORDER_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,

    /// Where the issuer's keys are (JWKS) [default: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration`].
    #[arg(long, env = "OPENORDER_OIDC_JWKS_URL", requires = "oidc_issuer")]
    pub oidc_jwks_url: Option<String>,

    /// The token claim that holds the user id (a positive integer, or a string of one).
    #[arg(long, env = "OPENORDER_OIDC_USER_CLAIM", default_value = "sub")]
    pub oidc_user_claim: String,

    /// Serve what has no authentication configured open although the service listens
    /// beyond loopback (only behind a gateway that authenticates).
    #[arg(long, env = "OPENORDER_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
}

/// A service's API, split by who may call it (`runtime::service::Runtime::serve` puts
/// each part behind its rule, and adds `/admin/status` to the operators' part).
#[derive(Default)]
pub struct Routes {
    public: Option<Router>,
    customers: Option<Router>,
    operators: Option<Router>,
}

fn merged(routes: Option<Router>, router: Router) -> Option<Router> {
    Some(match routes {
        Some(routes) => routes.merge(router),
        None => router,
    })
}

impl Routes {
    /// Adds routes open to anyone (published contracts, documentation).
    pub fn public(mut self, router: Router) -> Self {
        self.public = merged(self.public.take(), router);
        self
    }

    /// Adds customers' routes (operators may call them too).
    pub fn customers(mut self, router: Router) -> Self {
        self.customers = Some(match self.customers.take() {
            Some(routes) => routes.merge(router),
            None => router,
        });
        self
    }

    /// Adds operators' routes.
    pub fn operators(mut self, router: Router) -> Self {
        self.operators = Some(match self.operators.take() {
            Some(routes) => routes.merge(router),
            None => router,
        });
        self
    }
}

/// Who is calling, as the access rule of the route found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An operator, by the name of their token.
    Operator(String),
    /// A customer: the user id from their token.
    Customer(i64),
    /// Anyone: this kind of caller has no authentication configured.
    Anyone,
}

impl Caller {
    /// The one user whose data this caller may see, or None for every user's.
    pub fn only_user(&self) -> Option<i64> {
        match self {
            Caller::Customer(user) => Some(*user),
            Caller::Operator(_) | Caller::Anyone => None,
        }
    }

    /// 403 when the caller is a customer other than `user_id`.
    pub fn may_act_for(&self, user_id: i64) -> Result<(), Problem> {
        match self.only_user() {
            Some(own) if own != user_id => Err(forbidden(format!(
                "your token is for user {own}; it cannot act for user {user_id}"
            ))),
            _ => Ok(()),
        }
    }

    /// May this caller see something owned by `owner`? (Answer a customer 404 for what is
    /// another's, so that ids say nothing about what exists.)
    pub fn may_see(&self, owner: i64) -> bool {
        self.only_user().is_none_or(|own| own == owner)
    }
}

/// Handlers read the caller with this extractor. A route without an access rule has no
/// caller: that is a programming error, answered 500 rather than served open.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Problem::internal(anyhow::anyhow!(
                "{} {} has no access rule",
                parts.method,
                parts.uri.path()
            ))
        })
    }
}

/// A service's authentication, built once at start.
#[derive(Clone)]
pub struct Auth {
    operators: Operators,
    customers: Option<Oidc>,
    protect_metrics: bool,
}

impl Auth {
    /// Reads the operator tokens and starts keeping the issuer's keys fresh (until `stop`).
    /// Refuses to serve `address` beyond loopback with a kind of caller unauthenticated,
    /// unless `--insecure-no-auth`.
    pub async fn start(
        args: &AuthArgs,
        service: &str,
        address: SocketAddr,
        stop: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let operators = Operators::load(
            args.operator_token_hashes.clone(),
            args.operator_tokens_file.clone(),
        )
        .await?;
        let customers = match (&args.oidc_issuer, &args.oidc_audience) {
            (Some(issuer), Some(audience)) => Some(Oidc::new(OidcSettings {
                issuer: issuer.clone(),
                audience: audience.clone(),
                jwks_url: args.oidc_jwks_url.clone(),
                user_claim: args.oidc_user_claim.clone(),
            })?),
            _ => None,
        };
        let mut open = Vec::new();
        if operators.is_unconfigured() {
            open.push("operator routes (no --operator-tokens-file or --operator-token-hash)");
        }
        if customers.is_none() {
            open.push("customer routes (no --oidc-issuer)");
        }
        if !open.is_empty() {
            let open = open.join(" and ");
            if !address.ip().is_loopback() && !args.insecure_no_auth {
                anyhow::bail!(
                    "{service} would listen on {address}, beyond loopback, with {open} open to anyone: \
                     configure authentication, listen on 127.0.0.1, or pass --insecure-no-auth \
                     if a gateway in front authenticates"
                );
            }
            tracing::warn!(service, %address, "no authentication for {open}: anyone who can connect may call them");
        }
        operators.spawn_reload(stop.clone());
        if let Some(oidc) = &customers {
            oidc.spawn_refresh(stop.clone());
        }
        Ok(Self {
            operators,
            customers,
            protect_metrics: args.protect_metrics,
        })
    }

    /// No authentication at all: every route open ([`Caller::Anyone`]), for tests that
    /// call a router directly.
    pub fn unconfigured() -> Self {
        Self {
            operators: Operators::default(),
            customers: None,
            protect_metrics: false,
        }
    }

    /// Both parts of `routes` behind their rules, as one router.
    pub fn apply(&self, routes: Routes) -> Router {
        let customers = routes.customers.map(|r| self.for_customers(r));
        let operators = routes.operators.map(|r| self.for_operators(r));
        routes
            .public
            .into_iter()
            .chain(customers)
            .chain(operators)
            .fold(Router::new(), Router::merge)
    }

    /// `router`'s routes for customers (and operators).
    pub fn for_customers(&self, router: Router) -> Router {
        router.route_layer(axum::middleware::from_fn_with_state(
            self.clone(),
            customer_gate,
        ))
    }

    /// `router`'s routes for operators only.
    pub fn for_operators(&self, router: Router) -> Router {
        router.route_layer(axum::middleware::from_fn_with_state(
            self.clone(),
            operator_gate,
        ))
    }

    /// `/metrics`: for operators when `--protect-metrics`, else open.
    pub fn for_metrics(&self, router: Router) -> Router {
        if self.protect_metrics {
            self.for_operators(router)
        } else {
            router
        }
    }

    async fn customer(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let token = bearer(headers)?;
        if let Some(token) = token {
            if let Some(name) = self.operators.who(token) {
                return Ok(Caller::Operator(name));
            }
        }
        let Some(oidc) = &self.customers else {
            return Ok(Caller::Anyone);
        };
        let Some(token) = token else {
            return Err(Denied::unauthorized(
                None,
                "this needs a customer token: Authorization: Bearer <JWT>",
            ));
        };
        match oidc.user_of(token).await {
            Ok(user) => Ok(Caller::Customer(user)),
            Err(Refusal::Invalid(why)) => Err(Denied::unauthorized(Some("invalid_token"), why)),
            Err(Refusal::NoUser(why)) => Err(Denied::Forbidden(why)),
        }
    }

    async fn operator(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        if self.operators.is_unconfigured() {
            return Ok(Caller::Anyone);
        }
        let Some(token) = bearer(headers)? else {
            return Err(Denied::unauthorized(
                None,
                "this needs an operator token: Authorization: Bearer <token>",
            ));
        };
        if let Some(name) = self.operators.who(token) {
            return Ok(Caller::Operator(name));
        }
        if let Some(oidc) = &self.customers {
            if oidc.user_of(token).await.is_ok() {
                return Err(Denied::Forbidden(
                    "operators only: a customer token cannot do this".into(),
                ));
            }
        }
        Err(Denied::unauthorized(
            Some("invalid_token"),
            "the token is not an operator token",
        ))
    }
}

/// The bearer token of `Authorization`, if any; 401 for another scheme or a malformed one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        Denied::unauthorized(
            Some("invalid_request"),
            "Authorization must be `Bearer <token>`",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// A request refused before its handler.
enum Denied {
    /// 401: no credential, or one that is not valid; RFC 6750's `error` when a token was refused.
    Unauthorized(Option<&'static str>, String),
    /// 403: the caller is known but may not do this.
    Forbidden(String),
}

impl Denied {
    fn unauthorized(error: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self::Unauthorized(error, detail.into())
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized(error, detail) => unauthorized(error, &detail),
            Denied::Forbidden(detail) => forbidden(detail).into_response(),
        }
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
fn unauthorized(error: Option<&str>, detail: &str) -> Response {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    )
    .into_response();
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"openorder\", error=\"{error}\""),
        None => "Bearer realm=\"openorder\"".to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 403: the caller is known but may not do this.
pub fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}

async fn customer_gate(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    match auth.customer(request.headers()).await {
        Ok(caller) => admitted(caller, request, next).await,
        Err(refused) => refused.into_response(),
    }
}

async fn operator_gate(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    match auth.operator(request.headers()).await {
        Ok(caller) => admitted(caller, request, next).await,
        Err(refused) => refused.into_response(),
    }
}

/// Runs the request as `caller`; an operator's state-changing request is logged with its outcome.
async fn admitted(caller: Caller, mut request: Request, next: Next) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let action = match (&caller, changes) {
        (Caller::Operator(name), true) => Some((
            name.clone(),
            request.method().clone(),
            request.uri().path().to_string(),
        )),
        _ => None,
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if let Some((operator, method, path)) = action {
        tracing::info!(operator, %method, path, status = response.status().as_u16(), "operator action");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(args: &AuthArgs, address: &str) -> anyhow::Result<Auth> {
        let stop = tokio_util::sync::CancellationToken::new();
        let auth = Auth::start(args, "order-service", address.parse().unwrap(), &stop).await;
        stop.cancel();
        auth
    }

    #[tokio::test]
    async fn a_service_beyond_loopback_without_authentication_refuses_to_start_unless_told() {
        let none = AuthArgs::default();
        for loopback in ["127.0.0.1:8080", "[::1]:8080"] {
            assert!(start(&none, loopback).await.is_ok(), "{loopback}");
        }
        let err = start(&none, "0.0.0.0:8080").await.err().expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains("beyond loopback"), "{text}");
        assert!(
            text.contains("operator routes") && text.contains("customer routes"),
            "{text}"
        );
        assert!(text.contains("--insecure-no-auth"), "{text}");

        let operators_only = AuthArgs {
            operator_token_hashes: vec![Entry::for_token("ops", &operators::new_token())],
            ..Default::default()
        };
        let err = start(&operators_only, "10.1.2.3:8080")
            .await
            .err()
            .expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("customer routes") && !text.contains("operator routes"),
            "{text}"
        );

        let told = AuthArgs {
            insecure_no_auth: true,
            ..Default::default()
        };
        assert!(start(&told, "0.0.0.0:8080").await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_operator_token_file_stops_the_start_with_its_path() {
        let args = AuthArgs {
            operator_tokens_file: Some("/nonexistent/operators".into()),
            ..Default::default()
        };
        let err = start(&args, "127.0.0.1:8080").await.err().expect("refused");
        assert!(
            format!("{err:#}").contains("/nonexistent/operators"),
            "{err:#}"
        );
    }

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_operators_change_is_logged_with_their_name_and_a_refused_one_reaches_no_handler() {
        use tower::ServiceExt;
        let token = operators::new_token();
        let args = AuthArgs {
            operator_token_hashes: vec![Entry::for_token("alice-ops", &token)],
            ..Default::default()
        };
        let auth = start(&args, "127.0.0.1:8080").await.unwrap();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let routes = Routes::default().operators(Router::new().route(
            "/admin/thing",
            axum::routing::put(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { "done" }
            }),
        ));
        let app = auth.apply(routes);
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let put = |token: Option<&str>| {
            let mut request = axum::http::Request::put("/admin/thing");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            request.body(axum::body::Body::empty()).unwrap()
        };
        let refused = app.clone().oneshot(put(None)).await.unwrap();
        assert_eq!(refused.status(), 401);
        let refused = app.clone().oneshot(put(Some("oo_wrong"))).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no handler ran"
        );
        let done = app.oneshot(put(Some(&token))).await.unwrap();
        assert_eq!(done.status(), 200);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("operator action"))
            .unwrap_or_else(|| panic!("{log}"));
        for part in ["alice-ops", "PUT", "/admin/thing", "200"] {
            assert!(line.contains(part), "{line}");
        }
        assert!(!log.contains(&token), "the token is not logged");
    }

    #[test]
    fn a_customer_may_act_only_for_themself_and_others_for_anyone() {
        assert!(Caller::Customer(7).may_act_for(7).is_ok());
        let refused = Caller::Customer(7).may_act_for(8).unwrap_err();
        assert_eq!(
            (refused.status, refused.type_.as_str()),
            (403, "/problems/forbidden")
        );
        assert!(Caller::Operator("ops".into()).may_act_for(8).is_ok());
        assert!(Caller::Anyone.may_act_for(8).is_ok());
        assert!(Caller::Customer(7).may_see(7) && !Caller::Customer(7).may_see(8));
    }
}
