//! Limits on every door: request rates per client address, per class and per token (token
//! buckets from `governor`), and counts of what one address holds open at once.
//!
//! Every refusal is a [`Problem`] (429 with `Retry-After`); the numbers come from the
//! `[limits]` section of the configuration and are explained in `docs/SECURITY.md`.

use crate::Problem;
use crate::config::LimitsConfig;
pub use ardoise_net::open_counts::{OpenCounts, OpenGuard};
use ardoise_proto::ClassId;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A token bucket per key: `n` requests in a burst, refilled at `n` per period.
pub struct RateLimit<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    clock: DefaultClock,
    what: &'static str,
}

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// `n` per minute per key (and a burst of `n`).
    pub fn per_minute(n: u32, what: &'static str) -> Self {
        let n = NonZeroU32::new(n.max(1)).expect("positive");
        Self::with_quota(Quota::per_minute(n), what)
    }

    /// `n` per hour per key (and a burst of `n`).
    pub fn per_hour(n: u32, what: &'static str) -> Self {
        let n = NonZeroU32::new(n.max(1)).expect("positive");
        Self::with_quota(Quota::per_hour(n), what)
    }

    fn with_quota(quota: Quota, what: &'static str) -> Self {
        RateLimit { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default(), what }
    }

    /// Take one request of `key`, or a 429 saying when to retry.
    pub fn check(&self, key: &K) -> Result<(), Problem> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            too_many(format!("too many {}; try again later", self.what), wait)
        })
    }

    /// Drop the buckets of keys that are full again (bounded memory under a spray of keys).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys with a bucket now.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// A 429 with `Retry-After` rounded up to whole seconds (at least 1).
pub fn too_many(detail: impl Into<String>, wait: Duration) -> Problem {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem {
        retry_after: Some(secs.clamp(1, 3600) as u32),
        ..Problem::new(axum::http::StatusCode::TOO_MANY_REQUESTS, detail)
    }
}

/// The limits of one server.
pub struct Limits {
    /// The configured numbers.
    pub config: LimitsConfig,
    /// WHIP/WHEP offers per client address (the class's publisher apart).
    pub offers: RateLimit<IpAddr>,
    /// WHIP/WHEP offers per token subject.
    pub offers_per_token: RateLimit<String>,
    /// Class look-ups and joins per client address.
    pub lookups: RateLimit<IpAddr>,
    /// Joins per class.
    pub joins_per_class: RateLimit<ClassId>,
    /// Class creations per token subject.
    pub creations: RateLimit<String>,
    /// Login attempts per client address.
    pub logins_ip: RateLimit<IpAddr>,
    /// Login attempts per email.
    pub logins_account: RateLimit<String>,
    /// Class-events WebSockets open per client address.
    pub websockets: Arc<OpenCounts<IpAddr>>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Limits {
    /// Limits from the configuration.
    pub fn new(config: LimitsConfig, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Limits {
            offers: RateLimit::per_minute(config.offers_per_ip_per_minute, "offers from this address"),
            offers_per_token: RateLimit::per_minute(config.offers_per_ip_per_minute, "offers with this token"),
            lookups: RateLimit::per_minute(config.joins_per_ip_per_minute, "class look-ups from this address"),
            joins_per_class: RateLimit::per_minute(config.joins_per_class_per_minute, "joins into this class"),
            creations: RateLimit::per_hour(config.classes_per_token_per_hour, "classes created with this token"),
            logins_ip: RateLimit::per_minute(30, "login attempts from this address"),
            logins_account: RateLimit::per_minute(10, "login attempts for this account"),
            websockets: Arc::default(),
            trusted_proxies,
            config,
        }
    }

    /// The login limits of `[accounts]`.
    pub fn with_logins(mut self, a: &crate::config::AccountsConfig) -> Self {
        self.logins_ip = RateLimit::per_minute(a.logins_per_ip_per_minute, "login attempts from this address");
        self.logins_account = RateLimit::per_minute(a.logins_per_account_per_minute, "login attempts for this account");
        self
    }

    /// Forget the buckets that are full again (called every minute).
    pub fn forget_idle(&self) {
        self.logins_ip.forget_idle();
        self.logins_account.forget_idle();
        self.offers.forget_idle();
        self.offers_per_token.forget_idle();
        self.lookups.forget_idle();
        self.joins_per_class.forget_idle();
        self.creations.forget_idle();
    }

    /// The client's address: the TCP peer, or for a trusted proxy the last address of
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let Some(list) = forwarded_for else { return peer };
        let mut client = peer;
        for hop in list.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
        client
    }
}

/// The address of the client that made the request (see [`Limits::client_ip`]). Requests
/// that did not come through the listener (tests with `oneshot`) count as 0.0.0.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<crate::SharedState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &crate::SharedState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let xff = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Ok(ClientAddr(state.limits.client_ip(peer, xff)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_with_retry_after_then_forgets() {
        let l: RateLimit<u8> = RateLimit::per_minute(3, "tries");
        assert!((0..3).all(|_| l.check(&1).is_ok()));
        let p = l.check(&1).unwrap_err();
        assert_eq!(p.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(p.retry_after.is_some_and(|s| (1..=20).contains(&s)), "{:?}", p.retry_after);
        assert!(l.check(&2).is_ok(), "another key has its own bucket");
        assert_eq!(l.keys(), 2);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let cfg = crate::Config::load(None, Vec::<(String, String)>::new()).unwrap().limits;
        let l = Limits::new(cfg, vec!["10.0.0.0/8".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(l.client_ip(ip("192.0.2.1"), Some("203.0.113.9")), ip("192.0.2.1"), "untrusted peer");
        assert_eq!(l.client_ip(ip("10.0.0.2"), Some("203.0.113.9, 10.0.0.3")), ip("203.0.113.9"));
        assert_eq!(l.client_ip(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(l.client_ip(ip("10.0.0.2"), Some("garbage")), ip("10.0.0.2"));
    }
}
