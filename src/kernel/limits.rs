//! Limits on failed authentications, on governor's keyed GCRA limiters: per client address
//! and per key id, each check atomic. A failure is an audit write, so this also bounds what
//! a flood of bad credentials costs the store. The keyed map is pruned of keys whose limits
//! have fully replenished (`retain_recent`), never cleared.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

/// Failed authentications allowed per client (or key id) in a burst; one more is allowed
/// every 60 s / this.
pub const MAX_FAILURES: u32 = 30;

pub(crate) struct FailureLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
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
        let burst = NonZeroU32::new(MAX_FAILURES).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(burst)),
            suppressed: std::sync::Mutex::default(),
        }
    }
}

impl FailureLimiter {
    /// Counts a failure by `key`; `Err(seconds)` once it is over the limit, with the wait
    /// until the next one would be allowed.
    pub(crate) fn count(&self, key: &str) -> Result<(), u64> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                if let Ok(mut suppressed) = self.suppressed.lock() {
                    let slot =
                        if suppressed.len() < MAX_SUPPRESSED_KEYS || suppressed.contains_key(key) {
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
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
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
}
