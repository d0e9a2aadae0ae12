//! A per-source rate limit: the generic cell rate algorithm (GCRA), the token bucket's equivalent
//! that keeps one number, the *theoretical arrival time*, in an atomic.
//!
//! Lock-free because every webhook of a source goes through it from every worker thread. It runs
//! after verification, so only authentic traffic spends the budget: a flood of forgeries is
//! answered 401 and cannot get the real provider answered 429.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::source::RateLimit;

/// One source's limiter, shared by every worker thread; rebuilt (full burst) on a reload.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two webhooks at the sustained rate, ns.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run: `burst` intervals.
    tolerance: u64,
    /// Theoretical arrival time of the next webhook, ns since `epoch`.
    tat: AtomicU64,
    /// Origin of `tat`, so a time fits in a `u64` of nanoseconds.
    epoch: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        // At least 1 ns: an absurd rate must not make the interval 0 and the limit void.
        let interval = (1e9 / limit.per_second).max(1.0) as u64;
        RateLimiter {
            interval,
            // A burst of 0 would refuse everything: at least one webhook passes.
            tolerance: interval.saturating_mul(u64::from(limit.burst.max(1))),
            // The epoch itself: a new limiter starts with its whole burst available.
            tat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Takes one webhook's worth of budget, or says how long until there is some: the wait is the
    /// 429's `Retry-After`, rounded up to a whole second.
    pub fn acquire(&self, now: Instant) -> Result<(), Duration> {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: this one number is the whole state, and nothing else is published through it.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(self.interval);
            let allowed_from = next.saturating_sub(self.tolerance);
            if allowed_from > now {
                return Err(Duration::from_nanos(allowed_from - now));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                // Another thread took a slot first: recompute from its value, so two webhooks never
                // spend the same slot.
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_sustained_rate_holds() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 3,
        });
        let t0 = limiter.epoch + Duration::from_secs(5);
        for i in 0..3 {
            assert!(limiter.acquire(t0).is_ok(), "burst request {i}");
        }
        let wait = limiter
            .acquire(t0)
            .expect_err("the fourth is over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // One interval later there is room for exactly one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.acquire(t1).is_ok());
        assert!(limiter.acquire(t1).is_err());
    }

    #[test]
    fn an_idle_source_gets_its_whole_burst_back_and_no_more() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 2,
        });
        let later = limiter.epoch + Duration::from_secs(3600);
        assert!(limiter.acquire(later).is_ok());
        assert!(limiter.acquire(later).is_ok());
        assert!(limiter.acquire(later).is_err());
    }
}
