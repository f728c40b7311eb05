//! The flags of a service's HTTP API (each with an environment-variable twin).

use clap::Args;

/// How a service's HTTP API takes load.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Most API requests worked on at once; one more is answered at once with
    /// `503 /problems/overloaded` and `Retry-After: 1` (health and metrics endpoints are not
    /// limited). Each request in flight holds memory, so this bounds it under overload.
    #[arg(long, env = "OPENORDER_MAX_IN_FLIGHT_REQUESTS", default_value_t = MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..=1_000_000), hide_short_help = true)]
    pub max_in_flight_requests: u32,
    /// Milliseconds a client may take to send a request's head, counted from when its
    /// connection opened or its last response was sent; then the connection is closed. This
    /// also closes kept-alive connections idle that long.
    #[arg(long, env = "OPENORDER_HEADER_READ_TIMEOUT_MS", default_value_t = HEADER_READ_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..=3_600_000), hide_short_help = true)]
    pub header_read_timeout_ms: u64,
    /// Origins whose browser pages may call the API (CORS), comma-separated, e.g.
    /// `https://shop.example.com`; `*` for any. Empty (the default): no cross-origin
    /// access, and a preflight `OPTIONS` is answered `405`.
    #[arg(
        long,
        env = "OPENORDER_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        hide_short_help = true
    )]
    pub cors_allowed_origins: Vec<String>,

    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            max_in_flight_requests: MAX_IN_FLIGHT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS,
            cors_allowed_origins: Vec::new(),
            auth: Default::default(),
        }
    }
}

/// Most requests a service's API works on at once, by default (see [`crate::http::limited`]). Each
/// request in flight costs about 40 KiB (mostly hyper's connection buffers, measured with
/// heaptrack), so 2,048 bound a service's memory under overload to some 80 MiB above its
/// idle ~20 MiB, and admit a stall of 0.4 s at 5,000 orders/s (with 1,024, a 60 s run at
/// that rate refused 549 orders in its slowest seconds, when POSTs took up to 310 ms).
pub const MAX_IN_FLIGHT: u32 = 2048;

/// Default of how long a client may take to send a request's head, and how long a
/// kept-alive connection may stay idle between requests, before it is closed (nginx's
/// `client_header_timeout` and Kestrel's `RequestHeadersTimeout` are alike). Without it an
/// idle or trickling connection stays open for ever, holding a socket and ~9 KiB, outside
/// the limit on requests in flight.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
