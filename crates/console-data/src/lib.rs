//! What the console shows, gathered without any HTML: the pages of the `console` crate
//! render it, and its `/api` answers it as JSON.
//!
//! - topics read for people, straight from the brokers and read-only ([`records`]);
//! - the three services as the console reaches them, over their HTTP APIs as the signed-in
//!   operator ([`services`]);
//! - an order's timeline across every topic and service ([`timeline`]);
//! - the overview's figures now ([`snapshot`]) and over the last minutes, sampled in the
//!   background ([`history`]).
//!
//! What gathers from both the services and the brokers takes them as [`Sources`] (the
//! console implements it), held in an `Arc` so that a read can run off the async workers
//! ([`blocking`]) or in the background.

pub mod history;
pub mod records;
pub mod services;
pub mod snapshot;
pub mod timeline;

/// Where the console's data comes from: the services' APIs and the brokers' topics.
pub trait Sources: Send + Sync + 'static {
    /// The services, as the console reaches them.
    fn services(&self) -> &services::Services;
    /// The readers of the brokers' topics.
    fn readers(&self) -> &records::Readers;
}

/// Runs a blocking read (librdkafka) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("a read stopped: {e}"))?
}

/// A span of `seconds`, in its two largest units: `45 s`, `5 min`, `2 h 5 min`, `3 d 4 h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if d > 0 {
        two(d, "d", h, "h")
    } else if h > 0 {
        two(h, "h", m, "min")
    } else if m > 0 {
        two(m, "min", s, "s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_age_is_shown_in_its_two_largest_units() {
        assert_eq!(super::age(-3), "0 s");
        assert_eq!(super::age(45), "45 s");
        assert_eq!(super::age(300), "5 min");
        assert_eq!(super::age(412), "6 min 52 s");
        assert_eq!(super::age(7_500), "2 h 5 min");
        assert_eq!(super::age(3 * 86_400 + 4 * 3_600 + 59), "3 d 4 h");
    }
}
