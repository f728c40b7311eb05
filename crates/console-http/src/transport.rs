//! How the console is reached: over HTTPS when it is given a certificate and key
//! (`--console-tls-cert`, `--console-tls-key`; then HTTPS only), or over HTTP, perhaps behind
//! a proxy that terminates TLS (`--console-trust-forwarded-headers`: only then are the proxy's
//! `X-Forwarded-Proto` and `X-Forwarded-For` believed). From these, each request's
//! [`Client`]: its address (for the sign-in limit) and whether it came over HTTPS (the
//! session cookie is `Secure` then).
//!
//! The console has its own accept loop ([`serve_connections`]), shaped as platform's
//! (`platform::http::serve`: HTTP/1.1, the header read timeout, a plain connection's first
//! head screened, graceful shutdown), since platform's knows neither TLS nor the client's
//! address. Every request carries its TCP peer as axum's [`ConnectInfo`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::Router;
use clap::Args;
use platform::http::first_head::{self, FirstHead};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The console's flags for HTTPS and for a proxy in front of it (`openorder console` and
/// `openorder up`).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Console")]
pub struct TransportArgs {
    /// Certificate chain (PEM, the console's certificate first) the console serves HTTPS
    /// with; give --console-tls-key too. With both, the console serves HTTPS only.
    #[arg(long, env = "OPENORDER_CONSOLE_TLS_CERT", hide_short_help = true)]
    pub console_tls_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --console-tls-cert.
    #[arg(long, env = "OPENORDER_CONSOLE_TLS_KEY", hide_short_help = true)]
    pub console_tls_key: Option<PathBuf>,
    /// The console is reached through a proxy that sets `X-Forwarded-Proto` and
    /// `X-Forwarded-For` (replacing what a client sent): believe them. `X-Forwarded-Proto:
    /// https` makes the session cookie `Secure`; the left-most `X-Forwarded-For` is the
    /// client's address for the sign-in limit. Off (the default): both are ignored, and the
    /// client is the TCP peer.
    #[arg(
        long,
        env = "OPENORDER_CONSOLE_TRUST_FORWARDED_HEADERS",
        hide_short_help = true
    )]
    pub console_trust_forwarded_headers: bool,
}

impl TransportArgs {
    /// The TLS configuration the console serves with: `None` without a certificate and key.
    /// Either without the other is refused, as is a file that cannot be read or a key that
    /// does not belong to the certificate.
    pub fn tls(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.console_tls_cert, &self.console_tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Arc::new(server_config(cert, key)?))),
            (Some(_), None) => anyhow::bail!(
                "--console-tls-cert (OPENORDER_CONSOLE_TLS_CERT) is given without \
                 --console-tls-key (OPENORDER_CONSOLE_TLS_KEY): give both to serve the console \
                 over HTTPS, or neither to serve it over HTTP"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--console-tls-key (OPENORDER_CONSOLE_TLS_KEY) is given without \
                 --console-tls-cert (OPENORDER_CONSOLE_TLS_CERT): give both to serve the console \
                 over HTTPS, or neither to serve it over HTTP"
            ),
        }
    }
}

/// A TLS server configuration (TLS 1.2 and 1.3, HTTP/1.1) from PEM files.
fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "Failed to read the console's TLS certificate (--console-tls-cert) {}",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the console's TLS certificate file (--console-tls-cert) {} holds no PEM certificate",
        cert.display()
    );
    let private_key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "Failed to read the console's TLS private key (--console-tls-key) {} \
             (PEM: PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            key.display()
        )
    })?;
    // ring, named: rustls is built with aws-lc-rs too, so it has no provider of its own.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!(
                "the console's TLS certificate {} and key {} cannot be used together",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Who sent a request, and how it reached the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer's address, or, behind a trusted proxy, the left-most `X-Forwarded-For`.
    pub ip: IpAddr,
    /// Over HTTPS: the console serves TLS, or a trusted proxy says `X-Forwarded-Proto: https`.
    pub https: bool,
}

impl Client {
    /// The client of a request from `peer` (`None`, a request handed to the router without
    /// a connection, counts as from `0.0.0.0`) with `headers`, to a console that serves
    /// `tls` or not and trusts a proxy's forwarded headers or not.
    pub fn of(
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        tls: bool,
        trust_forwarded: bool,
    ) -> Self {
        let mut client = Self {
            ip: peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip()),
            https: tls,
        };
        if trust_forwarded {
            if let Some(ip) = left_most(headers, "x-forwarded-for").and_then(address) {
                client.ip = ip;
            }
            client.https = tls
                || left_most(headers, "x-forwarded-proto")
                    .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        }
        client
    }
}

/// The first comma-separated value of a header's first field.
fn left_most<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    value
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or either
/// with a port.
fn address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })
}

/// Serves `router` on `listener` until `shutdown`, over TLS only when `tls` is given; then
/// requests in flight get up to `drain`. As `platform::http::serve::serve` does: HTTP/1.1,
/// the service's limits and problems ([`platform::http::middleware::app`]), a request head
/// within the header read timeout, a plain connection's first head screened
/// ([`first_head`]). Besides: every request carries its TCP peer ([`ConnectInfo`]), and a
/// TLS handshake must end within the header read timeout too.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let http = platform::http::HttpArgs::default();
    let head_timeout = Duration::from_millis(http.header_read_timeout_ms);
    let router = platform::http::middleware::app(router);
    let mut connection_builder = hyper::server::conn::http1::Builder::new();
    connection_builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_headers(platform::http::middleware::HYPER_MAX_HEADERS);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: let connections finish.
                    tracing::warn!(%err, "the console failed to accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(tower::Layer::layer(
            &axum::Extension(ConnectInfo(peer)),
            router.clone(),
        ));
        let (builder, watcher, tls) = (
            connection_builder.clone(),
            connections.watcher(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    let stream = match tokio::time::timeout(head_timeout, tls.accept(stream)).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!(%err, %peer, "a TLS handshake with the console failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(builder.serve_connection(io, service)).await
                }
                None => {
                    let mut stream = stream;
                    // Boxed: its state is dropped once screened, not kept in the task.
                    let screened = Box::pin(first_head::screen(&mut stream, head_timeout)).await;
                    let FirstHead::Serve(head) = screened else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(first_head::Prefixed::new(head, stream));
                    watcher.watch(builder.serve_connection(io, service)).await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%err, "a console connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("console requests still running after {} ms; stopping anyway", drain.as_millis());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    const PEER: &str = "10.1.2.3:50000";

    fn client(headers: &HeaderMap, tls: bool, trust: bool) -> Client {
        Client::of(Some(PEER.parse().unwrap()), headers, tls, trust)
    }

    #[test]
    fn forwarded_headers_are_ignored_unless_the_console_is_told_to_trust_them() {
        let forwarded = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
        ]);
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            client(&forwarded, false, false),
            Client {
                ip: peer,
                https: false
            }
        );
        assert_eq!(
            client(&forwarded, false, true),
            Client {
                ip: "203.0.113.9".parse().unwrap(),
                https: true
            }
        );
        // Over TLS the request is on HTTPS whatever a header says.
        assert!(client(&headers(&[("x-forwarded-proto", "http")]), true, true).https);
        assert!(client(&HeaderMap::new(), true, false).https);
        // A proxy that says plain HTTP, or nothing: not HTTPS.
        assert!(!client(&headers(&[("x-forwarded-proto", "http")]), false, true).https);
        assert!(!client(&HeaderMap::new(), false, true).https);
        // An address that does not parse leaves the peer.
        assert_eq!(
            client(&headers(&[("x-forwarded-for", "unknown")]), false, true).ip,
            peer
        );
    }

    #[test]
    fn a_forwarded_address_is_read_with_or_without_port_and_brackets() {
        for (text, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:4711", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
        ] {
            assert_eq!(address(text), Some(ip.parse().unwrap()), "{text}");
        }
        assert_eq!(address("_hidden"), None);
    }

    #[test]
    fn a_certificate_without_a_key_or_a_key_without_a_certificate_is_refused() {
        let cert_only = TransportArgs {
            console_tls_cert: Some("/nonexistent/console.pem".into()),
            ..TransportArgs::default()
        };
        let err = cert_only.tls().unwrap_err().to_string();
        assert!(err.contains("--console-tls-key"), "{err}");
        let key_only = TransportArgs {
            console_tls_key: Some("/nonexistent/console.key".into()),
            ..TransportArgs::default()
        };
        let err = key_only.tls().unwrap_err().to_string();
        assert!(err.contains("--console-tls-cert"), "{err}");
        assert!(TransportArgs::default().tls().unwrap().is_none());
        let missing = TransportArgs {
            console_tls_cert: Some("/nonexistent/console.pem".into()),
            console_tls_key: Some("/nonexistent/console.key".into()),
            ..TransportArgs::default()
        };
        let err = format!("{:#}", missing.tls().unwrap_err());
        assert!(err.contains("/nonexistent/console.pem"), "{err}");
    }
}
