//! The memory budget shared by every shard: `pipeline.max_in_flight_bytes`.
//!
//! Why a shared budget and not only a per-shard window: memory held by
//! batches on their way to the SIEM is what grows with the shard count.
//! With a window of `in_flight_batches` per shard alone, 16 shards × 128
//! batches × 1 MiB may hold 2 GiB while the sink waits for its safe point
//! (`sink.settle_time`). The budget bounds the sum for any number of shards,
//! and a single busy shard can still use all of it, so a shard is not
//! throttled to `window / (settle_time + RTT)` just because other shards
//! exist.
//!
//! A shard takes the bytes of a formatted batch before it hands it to the
//! output task; the permit travels with the batch and is given back when the
//! output answers it (delivered or failed) or abandons it (abort). The
//! output task releases it, not the shard, so a shard waiting for budget
//! never waits on itself.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are KiB so any byte budget fits the semaphore's `u32` requests.
const UNIT: u64 = 1024;

/// A byte budget; clone it to share it (every clone draws on the same bytes).
#[derive(Debug, Clone)]
pub(super) struct Budget {
    sem: Arc<Semaphore>,
    /// Where the bytes held are shown (`in_flight_bytes`), if anywhere.
    gauge: Option<crate::counters::Metrics>,
    /// The whole budget in permits: one batch never asks for more, so a
    /// batch larger than the budget (one record over `batch_bytes`, or a
    /// budget set below it) still goes, alone.
    total: u32,
}

/// Bytes of a batch held against the budget; dropping it gives them back.
#[derive(Debug)]
pub(super) struct Permit {
    _inner: Option<OwnedSemaphorePermit>,
    /// Bytes to take off the gauge when dropped.
    shown: Option<(crate::counters::Metrics, u64)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((metrics, bytes)) = self.shown.take() {
            metrics
                .gauges()
                .in_flight_bytes
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub(super) fn new(bytes: u64) -> Self {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS as u64);
        let total = u32::try_from(units).unwrap_or(u32::MAX).max(1);
        let sem = Arc::new(Semaphore::new(total as usize));
        Self {
            sem,
            total,
            gauge: None,
        }
    }

    /// Show the bytes held, and the budget, in `metrics`' gauges.
    pub(super) fn shown_in(mut self, metrics: &crate::counters::Metrics) -> Self {
        crate::counters::set(
            &metrics.gauges().in_flight_budget,
            u64::from(self.total) * UNIT,
        );
        self.gauge = Some(metrics.clone());
        self
    }

    /// How many permits a batch of `bytes` takes.
    fn units(&self, bytes: usize) -> u32 {
        let units = (bytes as u64).div_ceil(UNIT);
        u32::try_from(units)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total)
    }

    /// Wait until `bytes` fit in the budget and take them.
    pub(super) async fn acquire(&self, bytes: usize) -> Permit {
        let n = self.units(bytes);
        // The semaphore is never closed, so this only fails if someone
        // closes it; then nothing is held and memory is simply unbounded.
        let inner = Arc::clone(&self.sem).acquire_many_owned(n).await.ok();
        let shown = self.gauge.as_ref().map(|m| {
            let bytes = u64::from(n) * UNIT;
            crate::counters::add(&m.gauges().in_flight_bytes, bytes);
            (m.clone(), bytes)
        });
        Permit {
            _inner: inner,
            shown,
        }
    }

    /// Take `bytes` if they fit now (tests).
    #[cfg(test)]
    fn try_acquire(&self, bytes: usize) -> Option<Permit> {
        let n = self.units(bytes);
        Arc::clone(&self.sem)
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| Permit {
                _inner: Some(p),
                shown: None,
            })
    }

    /// Bytes not held by any batch (rounded to the unit).
    #[cfg(test)]
    fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_share_one_budget() {
        let budget = Budget::new(4 * UNIT);
        let other_shard = budget.clone();
        let a = budget.try_acquire(3 * UNIT as usize);
        assert!(a.is_some());
        // Another shard's batch does not fit while the first is held...
        assert!(other_shard.try_acquire(2 * UNIT as usize).is_none());
        // ...but a smaller one does.
        let b = other_shard.try_acquire(UNIT as usize);
        assert!(b.is_some());
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 3 * UNIT);
        assert!(other_shard.try_acquire(2 * UNIT as usize).is_some());
    }

    #[test]
    fn a_batch_larger_than_the_budget_still_goes_alone() {
        let budget = Budget::new(2 * UNIT);
        let big = budget.try_acquire(10 * UNIT as usize);
        assert!(big.is_some());
        assert!(budget.try_acquire(1).is_none());
        drop(big);
        assert_eq!(budget.available(), 2 * UNIT);
    }

    #[test]
    fn partial_units_round_up() {
        let budget = Budget::new(2 * UNIT);
        let _p = budget.try_acquire(UNIT as usize + 1);
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test]
    async fn a_waiting_batch_goes_once_the_held_one_is_answered() {
        let budget = Budget::new(UNIT);
        let held = budget.acquire(UNIT as usize).await;
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(UNIT as usize).await })
        };
        // Releasing the held batch is what lets the waiter through.
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await;
        assert!(matches!(got, Ok(Ok(_))));
    }
}
