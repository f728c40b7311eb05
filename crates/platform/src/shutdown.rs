//! One shutdown design everywhere: a [`CancellationToken`] cancelled on Ctrl-C or SIGTERM.
//! Every task selects on it, finishes what it holds, and returns.

use tokio_util::sync::CancellationToken;

/// A token that is cancelled when the process gets SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail in a Tokio runtime");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        cancel.cancel();
    });
    token
}
