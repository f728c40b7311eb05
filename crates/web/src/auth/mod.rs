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

mod gates;
pub mod oidc;
pub mod operators;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;
use clap::Args;

use crate::http::Problem;
use oidc::{Oidc, OidcSettings};
use operators::{Entry, Operators};

pub use gates::forbidden;

/// The authentication flags every service takes (within [`crate::http::HttpArgs`]).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// File of operator token hashes, one `<name>=sha256:<hex>` per line (`openorder token
    /// new` makes one); re-read when it changes. Operator routes then need one of its tokens.
    #[arg(long, env = "OPENORDER_OPERATOR_TOKENS_FILE", hide_short_help = true)]
    pub operator_tokens_file: Option<PathBuf>,

    /// Operator token hash, `<name>=sha256:<hex>`, repeatable (environment: comma-separated).
    #[arg(long = "operator-token-hash", env = "OPENORDER_OPERATOR_TOKEN_HASHES", value_delimiter = ',', value_parser = Entry::parse, hide_short_help = true)]
    pub operator_token_hashes: Vec<Entry>,

    /// `/metrics` needs an operator token too (by default it is open, as scrapers expect).
    #[arg(long, env = "OPENORDER_PROTECT_METRICS", hide_short_help = true)]
    pub protect_metrics: bool,

    /// OpenID Connect issuer of customers' tokens (its `iss`), e.g.
    /// `https://login.example.com/realms/shop`. Customer routes then need a JWT from it.
    #[arg(
        long,
        env = "OPENORDER_OIDC_ISSUER",
        requires = "oidc_audience",
        hide_short_help = true
    )]
    pub oidc_issuer: Option<String>,

    /// The audience (`aud`) customers' tokens must be issued for.
    #[arg(
        long,
        env = "OPENORDER_OIDC_AUDIENCE",
        requires = "oidc_issuer",
        hide_short_help = true
    )]
    pub oidc_audience: Option<String>,

    /// Where the issuer's keys are (JWKS) [default: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration`].
    #[arg(
        long,
        env = "OPENORDER_OIDC_JWKS_URL",
        requires = "oidc_issuer",
        hide_short_help = true
    )]
    pub oidc_jwks_url: Option<String>,

    /// The token claim that holds the user id (a positive integer, or a string of one).
    #[arg(
        long,
        env = "OPENORDER_OIDC_USER_CLAIM",
        default_value = "sub",
        hide_short_help = true
    )]
    pub oidc_user_claim: String,

    /// Serve what has no authentication configured open although the service listens
    /// beyond loopback (only behind a gateway that authenticates).
    #[arg(long, env = "OPENORDER_INSECURE_NO_AUTH", hide_short_help = true)]
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
        self.customers = merged(self.customers.take(), router);
        self
    }

    /// Adds operators' routes.
    pub fn operators(mut self, router: Router) -> Self {
        self.operators = merged(self.operators.take(), router);
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
}

#[cfg(test)]
mod tests;
