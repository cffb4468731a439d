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
    /// Failures refused over the limit, per key, since they were last recorded: they are
    /// audited as one summary per key (so a flood cannot fill the log, nor hide in it).
    suppressed: std::sync::Mutex<std::collections::HashMap<String, u64>>,
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

    /// Counts a failure by `key`; `Err(seconds)` once it is over the limit, with the wait
    /// until the next one would be allowed.
    pub(crate) fn count(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            if let Ok(mut suppressed) = self.suppressed.lock() {
                let slot = if suppressed.len() < MAX_SUPPRESSED_KEYS || suppressed.contains_key(key)
                {
                    key
                } else {
                    OTHER_KEYS
                };
                *suppressed.entry(slot.to_owned()).or_default() += 1;
            }
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs().max(1)
        })
    }

    /// The failures refused over the limit since the last call, per key.
    pub(crate) fn take_suppressed(&self) -> Vec<(String, u64)> {
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
            limiter.count("ip:1").unwrap();
        }
        let wait = limiter.count("ip:1").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        limiter.count("ip:2").unwrap();
        limiter.prune();
        assert!(
            limiter.count("ip:1").is_err(),
            "pruning keeps keys still limited"
        );
    }

    #[test]
    fn a_limit_of_none_refuses_nothing() {
        let limiter = FailureLimiter::new(None);
        for _ in 0..=MAX_FAILURES * 2 {
            limiter.count("ip:1").unwrap();
        }
        assert!(limiter.take_suppressed().is_empty());
    }
}
