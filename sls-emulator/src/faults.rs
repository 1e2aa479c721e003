//! Fault injection, adjustable while the emulator runs (by `--fault-*` flags at start and by
//! [`Faults`] through the library API).
//!
//! Each request draws once: a connection reset (the connection is dropped without a
//! response), then a 5xx (`500 InternalServerError`, which every SDK retries), then — for
//! PullLogs only — a `403 ReadQuotaExceed`, and for PutLogs a `403 WriteQuotaExceed`.
//! Latency is added before anything else. Cursor expiry and forced consumer expiry are
//! state changes, not per-request draws; they live on `RunningEmulator`.

use std::sync::Mutex;
use std::time::Duration;

/// Fault rates and delays. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Fixed delay added to every request.
    pub latency: Duration,
    /// Extra random delay, uniform in `[0, latency_jitter]`.
    pub latency_jitter: Duration,
    /// Probability of `500 InternalServerError`.
    pub server_error_rate: f64,
    /// Probability of `403 ReadQuotaExceed` on PullLogs.
    pub read_throttle_rate: f64,
    /// Probability of `403 WriteQuotaExceed` on PutLogs.
    pub write_throttle_rate: f64,
    /// Probability of dropping the connection without an answer.
    pub reset_rate: f64,
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

/// Shared, run-time adjustable fault settings.
#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
}

impl Faults {
    /// Starts with `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config: Mutex::new(config),
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

    /// Clears every fault.
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Sets the fixed latency and jitter.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let mut c = self.lock();
        c.latency = latency;
        c.latency_jitter = jitter;
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

    /// The delay for one request.
    pub fn delay(&self) -> Duration {
        let c = self.lock();
        let jitter = c.latency_jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            fastrand::u64(0..=jitter)
        };
        c.latency + Duration::from_micros(extra)
    }

    /// Draws the fault for one request.
    pub fn draw(&self, kind: RequestKind) -> Injected {
        let c = self.lock();
        let hit = |rate: f64| rate > 0.0 && fastrand::f64() < rate;
        if hit(c.reset_rate) {
            Injected::Reset
        } else if hit(c.server_error_rate) {
            Injected::ServerError
        } else if (kind == RequestKind::Read && hit(c.read_throttle_rate))
            || (kind == RequestKind::Write && hit(c.write_throttle_rate))
        {
            Injected::Throttle
        } else {
            Injected::None
        }
    }
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
}
