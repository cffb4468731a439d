//! Limits on failed authentications, on governor's keyed GCRA limiters: per client address
//! and per key id, each check atomic. A failure is an audit write, so this also bounds what
//! a flood of bad credentials costs the store. The keyed map is pruned of keys whose limits
//! have fully replenished (`retain_recent`), never cleared.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

/// Failed authentications allowed per client (or key id) in a burst by default; one more is
/// allowed every 60 s / this (`LATCHKEY_AUTH_FAILURE_LIMIT`).
pub const MAX_FAILURES: u32 = 30;

pub(crate) struct FailureLimiter {
    /// None: failures are not limited (the operator turned it off).
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Failures refused over the limit, per key and the organization they were against,
    /// since they were last recorded: they are audited as one summary each, in that
    /// organization's log (so a flood cannot fill the log, nor hide in it).
    suppressed: std::sync::Mutex<std::collections::HashMap<Suppressed, u64>>,
}

/// Whose failures a summary counts: a limiter key, and the organization they were against.
pub(crate) type Suppressed = (String, Option<String>);

/// The limiter key of a client address. An IPv6 client counts by its /64, the range one host
/// is given (as the request limits count it), so it cannot get a fresh allowance per address.
pub fn client_key(ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(std::net::IpAddr::V6(v6)) => format!("ip:{}", v6.to_canonical()),
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}

/// Keys whose suppressed failures are counted one by one; beyond, they are counted together.
const MAX_SUPPRESSED_KEYS: usize = 10_000;
/// The key suppressed failures beyond [`MAX_SUPPRESSED_KEYS`] are counted under.
pub(crate) const OTHER_KEYS: &str = "other";

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new(NonZeroU32::new(MAX_FAILURES))
    }
}

impl FailureLimiter {
    /// `per_minute` failures allowed per key in a burst; None: no limit.
    pub(crate) fn new(per_minute: Option<NonZeroU32>) -> Self {
        Self {
            limiter: per_minute.map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            suppressed: std::sync::Mutex::default(),
        }
    }

    /// Counts a failure by `key` (against `org`, when it is known); `Err(seconds)` once it is
    /// over the limit, with the wait until the next one would be allowed.
    pub(crate) fn count(&self, key: &str, org: Option<&str>) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            if let Ok(mut suppressed) = self.suppressed.lock() {
                let mut slot = (key.to_owned(), org.map(str::to_owned));
                if suppressed.len() >= MAX_SUPPRESSED_KEYS && !suppressed.contains_key(&slot) {
                    slot = (OTHER_KEYS.to_owned(), None);
                }
                *suppressed.entry(slot).or_default() += 1;
            }
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs().max(1)
        })
    }

    /// The failures refused over the limit since the last call, per key and organization.
    pub(crate) fn take_suppressed(&self) -> Vec<(Suppressed, u64)> {
        self.suppressed
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default()
    }

    /// Forgets keys whose allowance is full again (run periodically).
    pub(crate) fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_key_and_says_how_long_to_wait() {
        let limiter = FailureLimiter::default();
        for _ in 0..MAX_FAILURES {
            limiter.count("ip:1", None).unwrap();
        }
        let wait = limiter.count("ip:1", None).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        limiter.count("ip:2", None).unwrap();
        limiter.prune();
        assert!(
            limiter.count("ip:1", None).is_err(),
            "pruning keeps keys still limited"
        );
    }

    #[test]
    fn a_limit_of_none_refuses_nothing() {
        let limiter = FailureLimiter::new(None);
        for _ in 0..=MAX_FAILURES * 2 {
            limiter.count("ip:1", None).unwrap();
        }
        assert!(limiter.take_suppressed().is_empty());
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let key = |ip: &str| client_key(Some(ip.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), "ip:10.0.0.1");
        assert_eq!(key("10.0.0.1"), "ip:10.0.0.1");
        assert_eq!(client_key(None), "ip:unknown");
    }

    #[test]
    fn suppressed_failures_are_summarised_per_key_and_organization() {
        let limiter = FailureLimiter::new(NonZeroU32::new(1));
        limiter.count("key:k", Some("org1")).unwrap();
        assert!(limiter.count("key:k", Some("org1")).is_err());
        assert!(limiter.count("key:k", Some("org1")).is_err());
        assert!(limiter.count("key:k", None).is_err());
        let mut summary = limiter.take_suppressed();
        summary.sort();
        assert_eq!(
            summary,
            vec![
                (("key:k".to_owned(), None), 1),
                (("key:k".to_owned(), Some("org1".to_owned())), 2)
            ]
        );
    }
}
