//! How often one client may try an operator token: at most [`MAX_FAILURES`] wrong tokens in
//! a sliding [`WINDOW`] per client address; beyond that the sign-in is refused (`429`, with
//! `Retry-After`) without the token being looked at, until the oldest of them is a window
//! old.
//!
//! A client is its address, an IPv6 one by its /64 (what one subscriber is usually given,
//! so a client cannot get ten more tries from each of its addresses). At most
//! [`MAX_SOURCES`] clients are tracked; past that, those with no wrong token in the window
//! go first, then the one seen longest ago.
//!
//! The log stays bounded too: the first refusal from a client (a wrong token, or a try over
//! the limit) is logged at once; what follows from it is counted and logged as one line a
//! minute at most ([`SignInLimit::due`]), never one line per try.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most wrong tokens from one client in a [`WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The sliding window over which wrong tokens are counted.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most clients tracked.
pub const MAX_SOURCES: usize = 10_000;

/// A client as limited: an IPv4 address, or an IPv6 address's /64 (an IPv4 address mapped
/// into IPv6 is that IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !(u128::from(u64::MAX)),
                ))),
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// What became of one sign-in attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The token was checked and accepted: what the check gave.
    Accepted(T),
    /// The token was checked and is wrong. `log`: the first refusal from this client to
    /// log (the ones after it are summed up by [`SignInLimit::due`]).
    Wrong { log: bool },
    /// Too many wrong tokens from this client: the token was not checked. It may try
    /// again after `retry_after`.
    Refused { retry_after: Duration, log: bool },
}

struct Entry {
    /// When its wrong tokens in the window came, oldest first (at most the limit).
    failures: VecDeque<Instant>,
    /// When it last tried.
    last: Instant,
    /// Refusals not logged yet: since when, and how many. `None`: the next refusal is
    /// logged at once.
    unlogged: Option<(Instant, u64)>,
}

impl Entry {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            self.failures.pop_front();
        }
    }

    /// Counts a refusal; true when it is the one to log now.
    fn refused(&mut self, now: Instant) -> bool {
        match &mut self.unlogged {
            Some((_, count)) => {
                *count += 1;
                false
            }
            None => {
                self.unlogged = Some((now, 0));
                true
            }
        }
    }
}

/// Sign-in attempts per client (see the module's documentation).
pub struct SignInLimit {
    max_failures: usize,
    window: Duration,
    max_sources: usize,
    sources: Mutex<HashMap<Source, Entry>>,
}

impl Default for SignInLimit {
    fn default() -> Self {
        Self::new(MAX_FAILURES, WINDOW, MAX_SOURCES)
    }
}

impl SignInLimit {
    pub fn new(max_failures: usize, window: Duration, max_sources: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            max_sources: max_sources.max(1),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// One sign-in attempt from `ip` at `now`: refused when the client is over the limit,
    /// else `check` looks at the token (`Some`: accepted) and a wrong one is counted. The
    /// check runs under the limiter's lock, so clients trying at once cannot slip past the
    /// limit together (it is a hash and a few comparisons).
    pub fn attempt<T>(
        &self,
        ip: IpAddr,
        now: Instant,
        check: impl FnOnce() -> Option<T>,
    ) -> Outcome<T> {
        let source = Source::of(ip);
        let mut sources = self.sources.lock().expect("never poisoned");
        if let Some(entry) = sources.get_mut(&source) {
            entry.expire(now, self.window);
            if entry.failures.len() >= self.max_failures {
                entry.last = now;
                let oldest = entry.failures.front().copied().unwrap_or(now);
                let retry_after = (oldest + self.window).saturating_duration_since(now);
                return Outcome::Refused {
                    retry_after,
                    log: entry.refused(now),
                };
            }
        }
        if let Some(accepted) = check() {
            return Outcome::Accepted(accepted);
        }
        if !sources.contains_key(&source) && sources.len() >= self.max_sources {
            self.make_room(&mut sources, now);
        }
        let entry = sources.entry(source).or_insert_with(|| Entry {
            failures: VecDeque::with_capacity(self.max_failures),
            last: now,
            unlogged: None,
        });
        entry.failures.push_back(now);
        entry.last = now;
        Outcome::Wrong {
            log: entry.refused(now),
        }
    }

    /// Forgets the clients with no wrong token in the window, then, while still full, the
    /// one seen longest ago.
    fn make_room(&self, sources: &mut HashMap<Source, Entry>, now: Instant) {
        sources.retain(|_, entry| {
            entry.expire(now, self.window);
            !entry.failures.is_empty()
        });
        while sources.len() >= self.max_sources {
            let oldest = sources
                .iter()
                .min_by_key(|(_, entry)| entry.last)
                .map(|(source, _)| *source);
            match oldest {
                Some(source) => sources.remove(&source),
                None => break,
            };
        }
    }

    /// The summaries due at `now`: each client whose refusals have gone unlogged for a
    /// window, with how many (its count starts again; a client with none is logged at once
    /// the next time). Clients with nothing left to count are forgotten.
    pub fn due(&self, now: Instant) -> Vec<(Source, u64)> {
        let mut due = Vec::new();
        let mut sources = self.sources.lock().expect("never poisoned");
        sources.retain(|source, entry| {
            entry.expire(now, self.window);
            if let Some((since, count)) = entry.unlogged {
                if now.saturating_duration_since(since) >= self.window {
                    if count > 0 {
                        due.push((*source, count));
                        entry.unlogged = Some((now, 0));
                    } else {
                        entry.unlogged = None;
                    }
                }
            }
            !entry.failures.is_empty() || entry.unlogged.is_some()
        });
        due
    }

    /// How many clients are tracked.
    pub fn tracked(&self) -> usize {
        self.sources.lock().expect("never poisoned").len()
    }
}

/// Whole seconds for a `Retry-After` of `wait` (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn wrong(limit: &SignInLimit, from: IpAddr, at: Instant) -> Outcome<()> {
        limit.attempt(from, at, || None)
    }

    #[test]
    fn ten_wrong_tokens_from_one_address_and_the_eleventh_try_is_refused_unchecked() {
        let limit = SignInLimit::default();
        let start = Instant::now();
        let from = ip("203.0.113.7");
        for i in 0..10u64 {
            let outcome = wrong(&limit, from, start + Duration::from_secs(i));
            assert_eq!(outcome, Outcome::Wrong { log: i == 0 }, "attempt {i}");
        }
        let mut checked = false;
        let outcome = limit.attempt(from, start + Duration::from_secs(10), || {
            checked = true;
            Some(())
        });
        assert!(!checked, "the token is not looked at");
        assert_eq!(
            outcome,
            Outcome::Refused {
                retry_after: Duration::from_secs(50),
                log: false
            }
        );
        // Another address is not held back.
        let other = limit.attempt(ip("203.0.113.8"), start + Duration::from_secs(10), || {
            Some("alice")
        });
        assert_eq!(other, Outcome::Accepted("alice"));
    }

    #[test]
    fn once_the_window_has_passed_an_address_may_try_again() {
        let limit = SignInLimit::default();
        let start = Instant::now();
        let from = ip("198.51.100.1");
        for _ in 0..10 {
            wrong(&limit, from, start);
        }
        assert!(matches!(
            wrong(&limit, from, start + Duration::from_secs(59)),
            Outcome::Refused { .. }
        ));
        assert_eq!(
            limit.attempt(from, start + WINDOW, || Some(())),
            Outcome::Accepted(())
        );
        // A sliding window: the tries come back one by one as they age.
        let limit = SignInLimit::default();
        for i in 0..10u64 {
            wrong(&limit, from, start + Duration::from_secs(i));
        }
        let at = start + WINDOW + Duration::from_millis(500);
        assert!(matches!(wrong(&limit, from, at), Outcome::Wrong { .. }));
        assert!(matches!(wrong(&limit, from, at), Outcome::Refused { .. }));
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_their_tries_and_a_mapped_ipv4_is_that_ipv4() {
        let limit = SignInLimit::default();
        let start = Instant::now();
        for i in 0..10u16 {
            wrong(
                &limit,
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i)),
                start,
            );
        }
        assert!(matches!(
            wrong(&limit, ip("2001:db8:0:1:ffff::1"), start),
            Outcome::Refused { .. }
        ));
        assert!(matches!(
            wrong(&limit, ip("2001:db8:0:2::1"), start),
            Outcome::Wrong { .. }
        ));
        assert_eq!(
            Source::of(ip("2001:db8:0:1::7")).to_string(),
            "2001:db8:0:1::/64"
        );
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.1")),
            Source::of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn no_more_addresses_are_tracked_than_the_cap_and_the_oldest_goes_first() {
        let limit = SignInLimit::new(10, WINDOW, 100);
        let start = Instant::now();
        for i in 0..1000u32 {
            let from = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            wrong(&limit, from, start + Duration::from_millis(u64::from(i)));
            assert!(limit.tracked() <= 100);
        }
        assert_eq!(limit.tracked(), 100);
        // The newest are kept, the oldest were let go.
        let newest = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999));
        let oldest = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000));
        let at = start + Duration::from_secs(1);
        for _ in 0..9 {
            wrong(&limit, newest, at);
        }
        assert!(matches!(wrong(&limit, newest, at), Outcome::Refused { .. }));
        assert!(matches!(
            wrong(&limit, oldest, at),
            Outcome::Wrong { log: true }
        ));
        // Once their window has passed and what they did is logged, clients are forgotten.
        let later = start + Duration::from_secs(3600);
        assert_eq!(limit.due(later).len(), 1, "the newest one's refusals");
        limit.due(later + WINDOW);
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn refusals_are_logged_once_then_summed_up_at_most_once_a_minute() {
        let limit = SignInLimit::default();
        let start = Instant::now();
        let from = ip("192.0.2.9");
        let mut logged_at_once = 0;
        for i in 0..2000u64 {
            let at = start + Duration::from_millis(i);
            match wrong(&limit, from, at) {
                Outcome::Wrong { log } | Outcome::Refused { log, .. } => {
                    logged_at_once += u32::from(log)
                }
                Outcome::Accepted(()) => unreachable!(),
            }
        }
        assert_eq!(
            logged_at_once, 1,
            "only the first refusal is logged at once"
        );
        assert!(limit.due(start + Duration::from_secs(30)).is_empty());
        let source = Source::of(from);
        assert_eq!(limit.due(start + WINDOW), vec![(source, 1999)]);
        // Nothing more in the next minute: nothing to say, and the next refusal is
        // logged at once again.
        assert!(limit.due(start + WINDOW * 2).is_empty());
        assert!(limit.due(start + WINDOW * 3).is_empty());
        assert_eq!(
            wrong(&limit, from, start + WINDOW * 3),
            Outcome::Wrong { log: true }
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(50_001)), 51);
        assert_eq!(retry_after_secs(Duration::from_secs(50)), 50);
    }
}
