//! What `up` prints once every service answers on its port, and how it knows they do.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use platform::CancellationToken;

use super::UpArgs;

/// Prints `banner` once every service answers on its port (then "up" is true), unless
/// `shutdown` comes first.
pub(super) fn announce(
    args: &UpArgs,
    banner: String,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let live: Vec<SocketAddr> = [args.order_port, args.inventory_port, args.notification_port]
        .iter()
        .map(|port| SocketAddr::new(args.host, *port))
        .collect();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if all_answer(&live, &shutdown).await {
            println!("{banner}");
        }
    })
}

/// Waits until every URL answers 200 (each service serves), polling; false if `shutdown`
/// came first (a service failed to start, or a signal).
async fn all_answer(addresses: &[SocketAddr], shutdown: &CancellationToken) -> bool {
    for address in addresses {
        while !answers_live(*address).await {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
    true
}

/// Does `GET /health/live` on `address` answer 200 within a second? A plain request on a
/// socket: an HTTP client (its TLS set-up) would cost `up` megabytes for a start-up check.
async fn answers_live(address: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ask).await,
        Ok(Ok(true))
    )
}

/// What `up` prints once every service answers: where everything is, the operator
/// token's file, and two requests to try.
pub(super) fn banner(
    args: &UpArgs,
    data_dir: &Path,
    token_path: &Path,
    broker_line: &str,
    console_scheme: &str,
) -> String {
    let host = args.host;
    let console_line = match args.console_port {
        0 => String::new(),
        port => format!(
            "console                 {console_scheme}://{host}:{port} (sign in with the operator token)\n  "
        ),
    };
    format!(
        "OpenOrder is up. Data in {data}\n  \
         {broker_line}\n  \
         order-service           http://{host}:{o}\n  \
         inventory-service       http://{host}:{i}\n  \
         notification-service    http://{host}:{n}\n  \
         {console_line}operator token          {token} (stock, faults, dead letters, status)\n\
         Try:\n  \
         curl -i -X POST http://{host}:{o}/api/orders -H 'Content-Type: application/json' \
         -d '{{\"userId\":42,\"items\":[{{\"sku\":\"ABC-001\",\"qty\":2}}]}}'\n  \
         curl -H \"Authorization: Bearer $(cat {token})\" http://{host}:{i}/admin/status\n\
         Ctrl-C stops everything.",
        data = data_dir.display(),
        token = token_path.display(),
        o = args.order_port,
        i = args.inventory_port,
        n = args.notification_port,
    )
}
