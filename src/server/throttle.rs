//! Request limits in front of every route: per client address and per presented credential
//! (the `Authorization` value), on governor's keyed GCRA limiters, answered `429` with
//! `Retry-After` in the envelope of the surface the path belongs to. They bound what any
//! client, authenticated or not, can make the server parse, look up and compute; failed
//! authentications have their own, stricter limit (`kernel::limits`).
//!
//! The client address is the connection's peer, unless the peer is a trusted proxy
//! (`LATCHKEY_TRUSTED_PROXIES`): then it is the right-most `X-Forwarded-For` entry that is
//! not a trusted proxy. A forwarded header from anyone else is ignored.

use std::{
    hash::BuildHasher,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::Response,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use ipnet::IpNet;

use crate::kernel::http::{ClientIp, error::ApiError};

/// Requests after which the limiters forget keys whose allowance is full again.
const PRUNE_EVERY: u64 = 1 << 16;

/// The limits' settings.
#[derive(Debug, Clone, Default)]
pub struct ThrottleConfig {
    /// Requests per second per client address (bursts of twice that); None: off.
    pub per_ip: Option<NonZeroU32>,
    /// Requests per second per `Authorization` value; None: off.
    pub per_token: Option<NonZeroU32>,
    pub trusted_proxies: Vec<IpNet>,
}

pub struct Throttle {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<u64>>,
    trusted: Vec<IpNet>,
    /// Keys the per-token map by a keyed hash: the map never holds a credential.
    hasher: std::collections::hash_map::RandomState,
    seen: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: NonZeroU32) -> DefaultKeyedRateLimiter<K> {
    let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Self {
        Self {
            per_ip: config.per_ip.map(limiter),
            per_token: config.per_token.map(limiter),
            trusted: config.trusted_proxies.clone(),
            hasher: Default::default(),
            seen: AtomicU64::new(0),
        }
    }

    /// The client's address: the peer, or what trusted proxies say it is.
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            // Some proxies append the port: `1.2.3.4:5678`, `[2001:db8::1]:443`.
            let parsed = entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()));
            let Ok(ip) = parsed else { break };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// `Err(seconds to wait)` when the address or the credential is over its limit.
    fn check(&self, ip: IpAddr, headers: &HeaderMap) -> Result<(), u64> {
        let wait = |not_until: governor::NotUntil<_>| {
            not_until
                .wait_time_from(governor::clock::DefaultClock::default().now())
                .as_secs()
                .max(1)
        };
        if let Some(limiter) = &self.per_ip {
            limiter.check_key(&limit_key(ip)).map_err(wait)?;
        }
        if let (Some(limiter), Some(value)) = (&self.per_token, headers.get(header::AUTHORIZATION))
        {
            let key = self.hasher.hash_one(value.as_bytes());
            limiter.check_key(&key).map_err(wait)?;
        }
        if self.seen.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            if let Some(l) = &self.per_ip {
                l.retain_recent();
            }
            if let Some(l) = &self.per_token {
                l.retain_recent();
            }
        }
        Ok(())
    }
}

/// What the per-address limit counts by: an IPv4 address, or an IPv6 address's /64 (one
/// client usually holds a whole /64, and could otherwise rotate through it).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// The middleware: resolves the client address (for every later layer and the audit log),
/// then applies the limits.
pub async fn limit(
    State(throttle): State<Arc<Throttle>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip());
    if let Some(peer) = peer {
        let ip = throttle.client_ip(peer, req.headers());
        req.extensions_mut().insert(ClientIp(ip));
        if let Err(seconds) = throttle.check(ip, req.headers()) {
            let error = ApiError {
                retry_after: Some(seconds),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry later",
                )
            };
            return super::render_for(req.uri().path(), error);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let t = Throttle::new(&ThrottleConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")],
            ..Default::default()
        });
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.9".parse().expect("ip");
        let spoof = headers(&["1.1.1.1"]);
        assert_eq!(t.client_ip(stranger, &spoof), stranger);
        assert_eq!(t.client_ip(proxy, &spoof).to_string(), "1.1.1.1");
        // A client's own X-Forwarded-For entries are left of what the proxies add.
        let chain = headers(&["6.6.6.6, 203.0.113.5", "10.9.9.9"]);
        assert_eq!(t.client_ip(proxy, &chain).to_string(), "203.0.113.5");
        assert_eq!(t.client_ip(proxy, &headers(&["garbage"])), proxy);
        assert_eq!(
            t.client_ip(proxy, &headers(&["203.0.113.5:4711"]))
                .to_string(),
            "203.0.113.5"
        );
        assert_eq!(
            t.client_ip(proxy, &headers(&["[2001:db8::7]:443"]))
                .to_string(),
            "2001:db8::7"
        );
    }

    #[test]
    fn limits_are_per_key() {
        let t = Throttle::new(&ThrottleConfig {
            per_ip: NonZeroU32::new(1),
            per_token: NonZeroU32::new(1),
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let none = HeaderMap::new();
        assert!(t.check(a, &none).is_ok());
        assert!(t.check(a, &none).is_ok());
        assert!(
            t.check(a, &none).is_err(),
            "a burst of twice the rate, then refused"
        );
        assert!(t.check(b, &none).is_ok());
        // One IPv6 /64 is one client.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert!(t.check(v6a, &none).is_ok());
        assert!(t.check(v6b, &none).is_ok());
        assert!(t.check(v6a, &none).is_err());
        let mut token = HeaderMap::new();
        token.insert(header::AUTHORIZATION, "Bearer x".parse().expect("header"));
        let c: IpAddr = "192.0.2.3".parse().expect("ip");
        let d: IpAddr = "192.0.2.4".parse().expect("ip");
        assert!(t.check(c, &token).is_ok());
        assert!(t.check(d, &token).is_ok());
        assert!(
            t.check(b, &token).is_err(),
            "the same credential from a third address"
        );
    }
}
