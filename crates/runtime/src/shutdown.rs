//! One shutdown design everywhere: a [`CancellationToken`] cancelled on SIGINT (Ctrl-C),
//! SIGTERM or SIGHUP. Every task selects on it, finishes what it holds, and returns, each
//! step of the stop bounded so that the whole stop ends within `--shutdown-timeout`
//! ([`StopArgs`]); the binary exits non-zero if it ever does not.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

/// A token that is cancelled when the process gets SIGINT, SIGTERM or SIGHUP.
///
/// SIGHUP is what a closed terminal sends, and SIGTERM what supervisors send (systemd, to
/// the whole control group; Docker and Kubernetes, to the main process): each is a stop.
pub fn on_signal() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut term = signal(SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail in a Tokio runtime");
    let mut hangup = signal(SignalKind::hangup())
        .expect("installing a SIGHUP handler cannot fail in a Tokio runtime");
    let mut interrupt = signal(SignalKind::interrupt())
        .expect("installing a SIGINT handler cannot fail in a Tokio runtime");
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT (Ctrl-C): shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = hangup.recv() => tracing::info!("SIGHUP: shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// The default of `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stop may take.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Shutdown")]
pub struct StopArgs {
    /// Longest a stop may take, from the signal to the exit (`10s`, `2500ms` or seconds).
    /// The services finish what they hold within 80 % of it (HTTP requests, the record in
    /// hand, the outbox's last pass, the final offset commit); whatever is left then is
    /// abandoned (it is redone after a restart: nothing accepted is lost), and a process
    /// still running when the whole time is up exits with status 1.
    #[arg(long, env = "OPENORDER_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration, hide_short_help = true)]
    pub shutdown_timeout: Duration,
}

impl Default for StopArgs {
    fn default() -> Self {
        Self {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl StopArgs {
    /// The time the services' own stop steps may take: 80 % of the timeout, so that the
    /// rest (dropping clients, the embedded broker's stop) fits in the remainder.
    pub fn services_budget(&self) -> Duration {
        self.shutdown_timeout.mul_f64(0.8)
    }
}

/// `10s`, `2500ms`, `1.5s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (say 10s or 2500ms)"))?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("{text:?} must be more than 0 and at most an hour"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_seconds_milliseconds_or_minutes() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
