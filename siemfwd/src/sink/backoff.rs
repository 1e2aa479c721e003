//! Reconnect delays: exponential backoff with jitter.
//!
//! Doubling bounds the load a fleet of forwarders puts on a SIEM that is
//! coming back; the cap bounds how long a forwarder stays blind after the SIEM
//! is back; the jitter keeps many forwarders (or many shards) that lost the
//! same receiver at the same instant from reconnecting in lock-step.
//!
//! Each delay is drawn uniformly from `[d/2, d]` ("equal jitter"), `d` being
//! `initial * 2^n` capped at `max`: the delay still grows every step, never
//! exceeds the cap and is never zero.

use std::time::Duration;

/// Delays between reconnect attempts of one outage.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays starting at `initial` and doubling up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self::with_rng(initial, max, fastrand::Rng::new())
    }

    fn with_rng(initial: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        // A zero initial delay would make doubling stay at zero: spin.
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
            rng,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let full = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let full_ns = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = full_ns / 2;
        Duration::from_nanos(half + self.rng.u64(0..=full_ns - half))
    }

    /// Start over after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_until_capped() {
        let mut b = Backoff::with_rng(100 * MS, 1000 * MS, fastrand::Rng::with_seed(7));
        // Step n lies in [d/2, d] with d = 100ms * 2^n capped at 1s.
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings {
            let d = b.next_delay();
            assert!(d <= ceiling * MS, "{d:?} > {ceiling}ms");
            assert!(d >= ceiling * MS / 2, "{d:?} < {ceiling}ms/2");
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let mut b = Backoff::with_rng(
            Duration::from_secs(1),
            Duration::from_secs(1),
            fastrand::Rng::with_seed(1),
        );
        let delays: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        let first = delays[0];
        assert!(
            delays.iter().any(|d| *d != first),
            "20 capped delays were all {first:?}: no jitter"
        );
    }

    #[test]
    fn backoff_reset_starts_over() {
        let mut b = Backoff::with_rng(
            10 * MS,
            Duration::from_secs(10),
            fastrand::Rng::with_seed(3),
        );
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= 10 * MS);
    }

    #[test]
    fn backoff_zero_initial_never_spins() {
        let mut b = Backoff::with_rng(Duration::ZERO, Duration::ZERO, fastrand::Rng::with_seed(5));
        assert!(b.next_delay() > Duration::ZERO);
    }
}
