//! Fault injection, adjustable while the emulator runs (by `--fault-*` flags at start and by
//! [`Faults`] through the library API).
//!
//! Each request draws once: a connection reset (the connection is dropped without a
//! response), then a 5xx (`500 InternalServerError`, which every SDK retries), then — for
//! PullLogs only — a `403 ReadQuotaExceed`, and for PutLogs a `403 WriteQuotaExceed`. A
//! PullLogs served normally may then be *short* (`short_pull_rate`): half the log groups it
//! found (at least one) though more are there, as a server that caps the size of an
//! answer does. Every SDK simply continues from `x-log-cursor`; a client that guesses where
//! a pull ends (siemfwd's pulls ahead) must notice that it guessed wrong.
//! Latency is added before anything else: the fixed `latency` plus up to `latency_jitter` on
//! every request, and `slow` more on a `slow_rate` share of them. Why a share: a fixed delay
//! of seconds on every request is a different test (a distant region); a few slow answers
//! among fast ones is what a loaded service does, and it is what shows whether one slow
//! request stalls everything behind it. Cursor expiry and forced consumer expiry are state
//! changes, not per-request draws; they live on `RunningEmulator`.
//!
//! Every fault that fires is counted ([`Faults::counts`]): a test that injects faults can
//! then check they really fired, so it cannot pass by never meeting one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Fault rates and delays. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Fixed delay added to every request.
    pub latency: Duration,
    /// Extra random delay, uniform in `[0, latency_jitter]`.
    pub latency_jitter: Duration,
    /// Probability that a request is slow: `slow` is added to its delay.
    pub slow_rate: f64,
    /// The extra delay of a slow request.
    pub slow: Duration,
    /// Probability of `500 InternalServerError`.
    pub server_error_rate: f64,
    /// Probability of `403 ReadQuotaExceed` on PullLogs.
    pub read_throttle_rate: f64,
    /// Probability of `403 WriteQuotaExceed` on PutLogs.
    pub write_throttle_rate: f64,
    /// Probability of dropping the connection without an answer.
    pub reset_rate: f64,
    /// Probability that a PullLogs returns half the log groups it found (at least one).
    pub short_pull_rate: f64,
    /// Probability that a request for temporary credentials (the metadata service, STS,
    /// `/_emulator/credentials`) answers `503`: 1 is an outage of every credential
    /// service at once.
    pub identity_error_rate: f64,
}

/// What a request should suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Nothing: serve normally.
    None,
    /// Drop the connection.
    Reset,
    /// Answer 500.
    ServerError,
    /// Answer 403 ReadQuotaExceed / WriteQuotaExceed.
    Throttle,
}

/// Which kind of request is drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// PullLogs.
    Read,
    /// PutLogs.
    Write,
    /// Anything else.
    Other,
}

/// How many times each fault fired since the emulator started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests delayed by `slow` (the `slow_rate` share).
    pub slowed: u64,
    /// Connections dropped without an answer.
    pub resets: u64,
    /// `500 InternalServerError` answers.
    pub server_errors: u64,
    /// `403 ReadQuotaExceed` answers (PullLogs).
    pub read_throttles: u64,
    /// `403 WriteQuotaExceed` answers (PutLogs).
    pub write_throttles: u64,
    /// PullLogs answered with fewer log groups than asked for and available.
    pub short_pulls: u64,
    /// Requests for temporary credentials answered `503`.
    pub identity_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    slowed: AtomicU64,
    resets: AtomicU64,
    server_errors: AtomicU64,
    read_throttles: AtomicU64,
    write_throttles: AtomicU64,
    short_pulls: AtomicU64,
    identity_errors: AtomicU64,
}

/// Shared, run-time adjustable fault settings, and counts of the faults that fired.
#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    fired: Counters,
}

impl Faults {
    /// Starts with `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config: Mutex::new(config),
            fired: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultConfig> {
        // A panic while holding this lock cannot leave the plain-data config inconsistent.
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces every setting.
    pub fn set(&self, config: FaultConfig) {
        *self.lock() = config;
    }

    /// Current settings.
    pub fn get(&self) -> FaultConfig {
        self.lock().clone()
    }

    /// Clears every fault (the counts of faults that fired stay).
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Sets the fixed latency and jitter.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let mut c = self.lock();
        c.latency = latency;
        c.latency_jitter = jitter;
    }

    /// Sets the share of slow requests and how much slower they are.
    pub fn set_slow(&self, rate: f64, slow: Duration) {
        let mut c = self.lock();
        c.slow_rate = rate;
        c.slow = slow;
    }

    /// How many times each fault fired so far.
    pub fn counts(&self) -> FaultCounts {
        let f = &self.fired;
        FaultCounts {
            slowed: f.slowed.load(Ordering::Relaxed),
            resets: f.resets.load(Ordering::Relaxed),
            server_errors: f.server_errors.load(Ordering::Relaxed),
            read_throttles: f.read_throttles.load(Ordering::Relaxed),
            write_throttles: f.write_throttles.load(Ordering::Relaxed),
            short_pulls: f.short_pulls.load(Ordering::Relaxed),
            identity_errors: f.identity_errors.load(Ordering::Relaxed),
        }
    }

    /// Sets the 500 rate.
    pub fn set_server_error_rate(&self, rate: f64) {
        self.lock().server_error_rate = rate;
    }

    /// Sets the PullLogs throttling rate.
    pub fn set_read_throttle_rate(&self, rate: f64) {
        self.lock().read_throttle_rate = rate;
    }

    /// Sets the PutLogs throttling rate.
    pub fn set_write_throttle_rate(&self, rate: f64) {
        self.lock().write_throttle_rate = rate;
    }

    /// Sets the connection reset rate.
    pub fn set_reset_rate(&self, rate: f64) {
        self.lock().reset_rate = rate;
    }

    /// Sets the share of short PullLogs answers.
    pub fn set_short_pull_rate(&self, rate: f64) {
        self.lock().short_pull_rate = rate;
    }

    /// Sets the share of refused requests for temporary credentials.
    pub fn set_identity_error_rate(&self, rate: f64) {
        self.lock().identity_error_rate = rate;
    }

    /// Whether this request for temporary credentials is refused (counted when it is).
    pub fn identity_fails(&self) -> bool {
        let fails = hit(self.lock().identity_error_rate);
        if fails {
            self.fired.identity_errors.fetch_add(1, Ordering::Relaxed);
        }
        fails
    }

    /// How many of the `groups` log groups a PullLogs found to return: half (at least
    /// one) on the `short_pull_rate` share of pulls, counted when that is fewer.
    pub fn pull_keep(&self, groups: usize) -> usize {
        if groups > 1 && hit(self.lock().short_pull_rate) {
            self.fired.short_pulls.fetch_add(1, Ordering::Relaxed);
            return groups / 2;
        }
        groups
    }

    /// The delay for one request: the fixed latency, the jitter, and `slow` for the
    /// `slow_rate` share.
    pub fn delay(&self) -> Duration {
        let c = self.lock();
        let jitter = c.latency_jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            fastrand::u64(0..=jitter)
        };
        let mut delay = c.latency + Duration::from_micros(extra);
        if hit(c.slow_rate) {
            self.fired.slowed.fetch_add(1, Ordering::Relaxed);
            delay += c.slow;
        }
        delay
    }

    /// Draws the fault for one request.
    pub fn draw(&self, kind: RequestKind) -> Injected {
        let c = self.lock();
        let (injected, counter) = if hit(c.reset_rate) {
            (Injected::Reset, &self.fired.resets)
        } else if hit(c.server_error_rate) {
            (Injected::ServerError, &self.fired.server_errors)
        } else if kind == RequestKind::Read && hit(c.read_throttle_rate) {
            (Injected::Throttle, &self.fired.read_throttles)
        } else if kind == RequestKind::Write && hit(c.write_throttle_rate) {
            (Injected::Throttle, &self.fired.write_throttles)
        } else {
            return Injected::None;
        };
        counter.fetch_add(1, Ordering::Relaxed);
        injected
    }
}

fn hit(rate: f64) -> bool {
    rate > 0.0 && fastrand::f64() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rates_never_fire_and_one_always_does() {
        let f = Faults::default();
        assert!((0..1000).all(|_| f.draw(RequestKind::Read) == Injected::None));
        f.set_read_throttle_rate(1.0);
        assert_eq!(f.draw(RequestKind::Read), Injected::Throttle);
        assert_eq!(
            f.draw(RequestKind::Other),
            Injected::None,
            "throttling applies to reads only"
        );
        f.set_server_error_rate(1.0);
        assert_eq!(f.draw(RequestKind::Other), Injected::ServerError);
        f.set_reset_rate(1.0);
        assert_eq!(f.draw(RequestKind::Other), Injected::Reset);
        f.clear();
        assert_eq!(f.draw(RequestKind::Read), Injected::None);
    }

    #[test]
    fn delay_stays_within_bounds() {
        let f = Faults::default();
        f.set_latency(Duration::from_millis(5), Duration::from_millis(2));
        for _ in 0..100 {
            let d = f.delay();
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(7));
        }
    }

    #[test]
    fn slow_rate_delays_only_its_share_of_requests_by_slow() {
        let f = Faults::default();
        f.set_latency(Duration::from_millis(1), Duration::ZERO);
        f.set_slow(0.25, Duration::from_secs(2));
        let n = 4000;
        let slow = (0..n)
            .map(|_| f.delay())
            .inspect(|d| {
                assert!(
                    *d == Duration::from_millis(1) || *d == Duration::from_millis(2001),
                    "{d:?}: the fixed latency, plus slow or nothing"
                )
            })
            .filter(|d| *d > Duration::from_secs(1))
            .count();
        // 25 % of 4000 is 1000; a binomial σ is ~27, so ±200 never fails by chance.
        assert!((800..=1200).contains(&slow), "{slow} slow of {n}");
        assert_eq!(f.counts().slowed, slow as u64, "each slow request counted");
        f.set_slow(0.0, Duration::from_secs(2));
        assert!((0..1000).all(|_| f.delay() == Duration::from_millis(1)));
        f.set_slow(1.0, Duration::ZERO);
        assert_eq!(
            f.delay(),
            Duration::from_millis(1),
            "slow of zero adds nothing"
        );
    }

    #[test]
    fn every_fault_that_fires_is_counted_by_kind() {
        let f = Faults::default();
        f.set_read_throttle_rate(1.0);
        f.set_write_throttle_rate(1.0);
        assert_eq!(f.draw(RequestKind::Read), Injected::Throttle);
        assert_eq!(f.draw(RequestKind::Write), Injected::Throttle);
        assert_eq!(f.draw(RequestKind::Write), Injected::Throttle);
        assert_eq!(f.draw(RequestKind::Other), Injected::None);
        f.set_server_error_rate(1.0);
        assert_eq!(f.draw(RequestKind::Other), Injected::ServerError);
        f.set_reset_rate(1.0);
        assert_eq!(f.draw(RequestKind::Read), Injected::Reset);
        assert!(!f.identity_fails());
        f.set_identity_error_rate(1.0);
        assert!(f.identity_fails());
        f.clear();
        assert_eq!(f.draw(RequestKind::Read), Injected::None);
        assert!(!f.identity_fails());
        assert_eq!(
            f.counts(),
            FaultCounts {
                slowed: 0,
                resets: 1,
                server_errors: 1,
                read_throttles: 1,
                write_throttles: 2,
                short_pulls: 0,
                identity_errors: 1,
            },
            "clear() keeps the counts"
        );
    }

    #[test]
    fn short_pulls_halve_the_count_and_are_counted() {
        let f = Faults::default();
        assert_eq!(f.pull_keep(10), 10);
        f.set_short_pull_rate(1.0);
        assert_eq!(f.pull_keep(10), 5);
        assert_eq!(f.pull_keep(3), 1);
        assert_eq!(f.pull_keep(1), 1, "one group cannot be shorter");
        assert_eq!(f.pull_keep(0), 0);
        assert_eq!(f.counts().short_pulls, 2);
    }
}
