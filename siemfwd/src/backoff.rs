//! Retry delays: exponential backoff with jitter — the one rule for every
//! retry in the program (sink reconnects, Log Service requests, heartbeats,
//! pulls).
//!
//! Doubling bounds the load a fleet of forwarders puts on a SIEM or a Log
//! Service endpoint that is coming back; the cap bounds how long a
//! forwarder stays blind after it is back; the jitter keeps many forwarders
//! (or many shards) that failed at the same instant from retrying in
//! lock-step.
//!
//! Each delay is drawn uniformly from `[d/2, d]` ("equal jitter"), `d` being
//! `initial × 2^(attempt−1)` capped at `max`: the delay still grows every
//! step, never exceeds the cap and is never zero.

use std::time::Duration;

/// The delay before retry number `attempt` of something that failed (the
/// first retry is number one, and zero counts as one): see the module doc.
/// For a loop that keeps its own attempt count; [`Backoff`] keeps it for
/// you.
pub(crate) fn delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    jittered(&mut fastrand::Rng::new(), ceiling(initial, max, attempt))
}

/// `initial × 2^(attempt−1)` capped at `max` (and at least 1 ms, so that a
/// zero setting never spins).
fn ceiling(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let initial = initial.max(Duration::from_millis(1));
    let max = max.max(initial);
    let doublings = attempt.saturating_sub(1).min(31);
    initial.saturating_mul(1 << doublings).min(max)
}

/// Uniform in `[d/2, d]`.
fn jittered(rng: &mut fastrand::Rng, d: Duration) -> Duration {
    let full_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let half = full_ns / 2;
    Duration::from_nanos(half + rng.u64(0..=full_ns - half))
}

/// Delays between the attempts of one outage.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// Attempts since the last success.
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays starting at `initial` and doubling up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self::with_rng(initial, max, fastrand::Rng::new())
    }

    fn with_rng(initial: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        jittered(&mut self.rng, ceiling(self.initial, self.max, self.attempt))
    }

    /// Start over after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
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
    fn delay_by_attempt_follows_the_same_rule() {
        for (attempt, ceiling_ms) in [
            (0, 100),
            (1, 100),
            (2, 200),
            (4, 800),
            (5, 1000),
            (99, 1000),
        ] {
            for _ in 0..20 {
                let d = delay(100 * MS, 1000 * MS, attempt);
                assert!(
                    d <= ceiling_ms * MS && d >= ceiling_ms * MS / 2,
                    "{attempt}: {d:?}"
                );
            }
        }
        assert!(delay(Duration::ZERO, Duration::ZERO, 1) > Duration::ZERO);
        assert!(
            delay(Duration::from_secs(10), Duration::from_secs(30), u32::MAX)
                <= Duration::from_secs(30)
        );
    }

    #[test]
    fn backoff_zero_initial_never_spins() {
        let mut b = Backoff::with_rng(Duration::ZERO, Duration::ZERO, fastrand::Rng::with_seed(5));
        assert!(b.next_delay() > Duration::ZERO);
    }
}
