//! Pulls ahead: how a shard read from far away keeps pace.
//!
//! PullLogs answers one pull at a time, and the next pull's cursor is in the
//! answer. One pull per round trip caps a shard at `fetch_bytes / RTT`:
//! ~2 MB/s at 100 ms, below what a busy shard is written at, so it would
//! fall behind for good (and Log Service deletes what is older than its TTL).
//! A lagging shard therefore keeps several pulls in flight: the cursor has a
//! documented shape (base64 of a decimal that grows by one per log group,
//! protocol notes §3), so a pull of `count` groups that comes back full ends
//! at `start + count`, and the next pull can start there before the answer is
//! back ([`Cursor::plus`](super::Cursor::plus)).
//!
//! A guess is only ever a request. A pull whose start was guessed is used
//! only once the server's own next cursor of the pull before it names the
//! same position; otherwise it is discarded, with everything behind it, and
//! reading goes on from the server's cursor. A guessed pull that failed is
//! never interpreted (its `InvalidCursor` may only mean "not written yet"):
//! it is pulled again from the server's cursor. Checkpoints are always the
//! server's cursors. So a server whose cursors do not have that shape costs
//! wasted requests, never skipped or repeated records.
//!
//! How many pulls ([`Depth`]): one, as always, while the shard is caught up.
//! While it lags (the last pull came back full and the server did not say
//! "end of cursor"), Little's law: the round trip divided by the reader's
//! own time per answer (formatting, sending, waiting for the sink — not
//! waiting for the network), plus one, from moving averages of both. A
//! reader slower than the round trip gets no pull ahead (more would only
//! hold memory); 100 ms away at 10 ms per answer, eleven. Why not "one more
//! whenever the reader waited, one fewer whenever the next answer was
//! already there": pulls sent together come back together, so every burst
//! looked like a queue and the depth collapsed (measured at 300 ms: 4.6 MB/s
//! instead of 15).
//!
//! Memory ([`Budget`]): every guessed pull holds its expected decompressed
//! bytes of one budget shared by all shards of the process
//! (`source.sls.prefetch_bytes`) from the request until its answer is taken;
//! what it really holds is its compressed answer, if that arrives before the
//! reader wants it. A shard may hold at most an equal share among the
//! shards that want more than one pull, so one lagging shard can use the
//! whole budget and sixteen share it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most pulls one shard keeps in flight, whatever the budget: each is an
/// HTTP connection, and Log Service serves a shard about 100 reads/s.
pub(crate) const MAX_PULLS: usize = 16;

/// The prefetch budget shared by every shard of the process; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: u64,
    used: AtomicU64,
    /// Shards that want more than one pull now.
    wanting: AtomicU32,
}

impl Budget {
    /// A budget of `bytes` (0: no shard pulls ahead).
    pub(crate) fn new(bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                total: bytes,
                used: AtomicU64::new(0),
                wanting: AtomicU32::new(0),
            }),
        }
    }

    /// One shard's claim on the budget.
    pub(crate) fn share(&self) -> Share {
        Share {
            inner: Arc::clone(&self.inner),
            held: Arc::new(AtomicU64::new(0)),
            wanting: false,
        }
    }

    /// Bytes held by guessed pulls now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }
}

/// A shard's claim on the [`Budget`].
#[derive(Debug)]
pub(crate) struct Share {
    inner: Arc<Inner>,
    /// Bytes this shard's leases hold.
    held: Arc<AtomicU64>,
    wanting: bool,
}

impl Share {
    /// Say whether this shard wants more than one pull: the shards that do
    /// split the budget evenly between them.
    pub(crate) fn want(&mut self, more: bool) {
        if more != self.wanting {
            self.wanting = more;
            if more {
                self.inner.wanting.fetch_add(1, Ordering::Relaxed);
            } else {
                self.inner.wanting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Take `bytes` for one guessed pull, if they fit in the budget and this
    /// shard holds less than its equal share of it (so it may pass its share
    /// by one pull: with pulls about as large as a share, "must fit in the
    /// share" made one byte decide between one pull ahead and two).
    pub(crate) fn try_lease(&self, bytes: u64) -> Option<Lease> {
        let sharing = u64::from(self.inner.wanting.load(Ordering::Relaxed).max(1));
        let fair = self.inner.total / sharing;
        if self.held.load(Ordering::Relaxed) >= fair {
            return None;
        }
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(bytes)?;
                (after <= self.inner.total).then_some(after)
            })
            .ok()?;
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Some(Lease {
            inner: Arc::clone(&self.inner),
            held: Arc::clone(&self.held),
            bytes,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.want(false);
    }
}

/// Bytes of the budget held by one guessed pull; dropping it gives them back.
#[derive(Debug)]
pub(crate) struct Lease {
    inner: Arc<Inner>,
    held: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// How many pulls a shard keeps in flight while it reads one, and how large
/// they are (see the module docs): Little's law, pulls in flight = round
/// trip × the rate at which the reader takes answers, from moving averages
/// of both; pulls twice as large when the round trip holds more pulls than
/// a shard may keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Depth {
    /// Moving average of a pull's round trip (request to answer), seconds.
    round_trip: Option<f64>,
    /// Moving average of the reader's time per answer when it does not wait
    /// for the network (formatting, sending, waiting for the sink), seconds;
    /// `None` until the reader took two answers in a row.
    busy: Option<f64>,
    pulls: usize,
    /// Pull size as a multiple of `fetch_bytes`: 1, 2, 4, … [`MAX_SCALE`].
    scale: u32,
}

impl Default for Depth {
    fn default() -> Self {
        Self {
            round_trip: None,
            busy: None,
            pulls: 1,
            scale: 1,
        }
    }
}

/// Largest pull, as a multiple of `source.sls.fetch_bytes` (4 MiB with the
/// default 256 KiB). In practice the prefetch budget stops growth earlier:
/// a shard reaches [`MAX_PULLS`] in flight only while its leases fit.
pub(crate) const MAX_SCALE: u32 = 16;

/// What the reader saw when it took an answer with data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Taken {
    /// The pull came back full and the server did not say it was at the end.
    pub lagging: bool,
    /// From its request to its answer.
    pub round_trip: Duration,
    /// The reader's time since it took the previous answer, less the time
    /// it then waited for this one; `None` for the first answer (after a
    /// start, an idle spell or a failure), which has no previous one.
    pub busy: Option<Duration>,
    /// Pulls the shard had in flight, this one included.
    pub in_flight: usize,
    /// A larger pull target would make a larger pull (the count of log
    /// groups is not at its cap already).
    pub can_grow: bool,
}

/// Weight of a new sample in the moving averages: about the last eight
/// answers count, so one slow request or one pause of the reader (a
/// checkpoint commit, the sink's budget) moves the depth by little.
const WEIGHT: f64 = 0.125;

/// The reader's time per answer is never taken as less than this: an
/// answer taken at once would otherwise ask for unbounded depth.
const MIN_BUSY: f64 = 0.000_1;

impl Depth {
    /// Pulls to keep in flight.
    pub(crate) fn pulls(self) -> usize {
        self.pulls
    }

    /// True while the shard wants more than the one pull every shard has.
    pub(crate) fn wants_more(self) -> bool {
        self.pulls > 1
    }

    /// Pull size as a multiple of `fetch_bytes`.
    pub(crate) fn scale(self) -> u32 {
        self.scale
    }

    /// Adapt to an answer with data.
    pub(crate) fn taken(&mut self, t: Taken) {
        let mix = |avg: Option<f64>, x: f64| Some(avg.map_or(x, |a| a + WEIGHT * (x - a)));
        self.round_trip = mix(self.round_trip, t.round_trip.as_secs_f64());
        if let Some(busy) = t.busy {
            self.busy = mix(self.busy, busy.as_secs_f64());
        }
        // Without the reader's pace there is nothing to divide by yet.
        let (true, Some(round_trip), Some(busy)) = (t.lagging, self.round_trip, self.busy) else {
            self.reset();
            return;
        };
        // As many as the round trip holds at the reader's pace, plus the one
        // every shard has, so the next answer is there when the reader is
        // done with this one.
        let ahead = (round_trip / busy.max(MIN_BUSY)).round();
        let wanted = if ahead.is_finite() {
            (ahead as usize).saturating_add(1)
        } else {
            usize::MAX
        };
        self.pulls = wanted.clamp(1, MAX_PULLS);
        // The round trip holds more pulls than a shard may keep, and it keeps
        // them all (the prefetch budget allows): make each pull larger. The
        // reader's time per answer grows with it, so its average is scaled
        // too, or every answer until it caught up would double the size again.
        // Back down with room to spare (a quarter), so the two do not fight.
        if wanted > MAX_PULLS && t.in_flight >= MAX_PULLS && t.can_grow && self.scale < MAX_SCALE {
            self.scale *= 2;
            self.busy = Some(busy * 2.0);
        } else if wanted <= MAX_PULLS / 4 && self.scale > 1 {
            self.scale /= 2;
            self.busy = Some(busy / 2.0);
        }
    }

    /// Back to one pull of the base size: the shard caught up, or a pull
    /// failed. The averages stay (they describe the path, not this moment),
    /// the reader's time per answer brought back to the base size.
    pub(crate) fn reset(&mut self) {
        self.pulls = 1;
        if let Some(busy) = self.busy.as_mut() {
            *busy /= f64::from(self.scale);
        }
        self.scale = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn lagging(round_trip: Duration, busy: Duration) -> Taken {
        Taken {
            lagging: true,
            round_trip,
            busy: Some(busy),
            in_flight: 1,
            can_grow: true,
        }
    }

    #[test]
    fn the_first_answer_does_not_pull_ahead() {
        let mut d = Depth::default();
        d.taken(Taken {
            lagging: true,
            round_trip: ms(300),
            busy: None,
            in_flight: 1,
            can_grow: true,
        });
        assert_eq!(d.pulls(), 1, "the reader's pace is not known yet");
        d.taken(lagging(ms(300), ms(1)));
        assert_eq!(d.pulls(), MAX_PULLS);
    }

    #[test]
    fn depth_covers_the_round_trip_at_the_readers_pace() {
        let mut d = Depth::default();
        // 100 ms away, 10 ms per answer: ten pulls cover the round trip,
        // one more has the next answer ready.
        for _ in 0..50 {
            d.taken(lagging(ms(100), ms(10)));
        }
        assert_eq!(d.pulls(), 11);
        // A reader twice as slow needs half as many.
        for _ in 0..100 {
            d.taken(lagging(ms(100), ms(20)));
        }
        assert_eq!(d.pulls(), 6);
    }

    #[test]
    fn pulls_grow_when_the_round_trip_holds_more_than_a_shard_may_keep() {
        let mut d = Depth::default();
        let full = |busy| Taken {
            lagging: true,
            round_trip: ms(300),
            busy: Some(busy),
            in_flight: MAX_PULLS,
            can_grow: true,
        };
        // 300 ms away at 1 ms per answer: 300 pulls wanted, 16 allowed.
        d.taken(full(ms(1)));
        assert_eq!((d.pulls(), d.scale()), (MAX_PULLS, 2));
        // The reader's average doubled with the size: the next answer at the
        // old pace does not double it again at once.
        d.taken(full(ms(2)));
        assert_eq!(d.scale(), 4, "still 150 wanted");
        for _ in 0..20 {
            d.taken(full(ms(2 * u64::from(d.scale()))));
        }
        assert_eq!(d.scale(), MAX_SCALE, "and so on, up to the cap");
        // Near again: answers take longer than the round trip; back down.
        for _ in 0..40 {
            d.taken(lagging(ms(5), ms(10)));
        }
        assert_eq!(d.scale(), 1);
    }

    #[test]
    fn pulls_grow_only_when_the_shard_holds_all_it_may() {
        let mut d = Depth::default();
        // The prefetch budget let it keep 3 of the 16 it wants: larger pulls
        // would only take larger leases from the same budget.
        for _ in 0..10 {
            d.taken(Taken {
                lagging: true,
                round_trip: ms(300),
                busy: Some(ms(1)),
                in_flight: 3,
                can_grow: true,
            });
        }
        assert_eq!((d.pulls(), d.scale()), (MAX_PULLS, 1));
        // Nor when the pull could not grow (its count of groups is capped).
        d.taken(Taken {
            lagging: true,
            round_trip: ms(300),
            busy: Some(ms(1)),
            in_flight: MAX_PULLS,
            can_grow: false,
        });
        assert_eq!(d.scale(), 1);
    }

    #[test]
    fn a_reset_brings_the_pace_back_to_the_base_size() {
        let mut d = Depth::default();
        let full = |busy| Taken {
            lagging: true,
            round_trip: ms(100),
            busy: Some(busy),
            in_flight: MAX_PULLS,
            can_grow: true,
        };
        d.taken(full(ms(1)));
        assert_eq!(d.scale(), 2);
        d.reset();
        assert_eq!((d.pulls(), d.scale()), (1, 1));
        // The next answer at the base size's pace finds the depth for it,
        // not one for pulls twice as large.
        d.taken(lagging(ms(100), ms(1)));
        assert_eq!(d.pulls(), MAX_PULLS);
    }

    #[test]
    fn depth_is_capped() {
        let mut d = Depth::default();
        for _ in 0..10 {
            // An answer taken at once: the pace is a floor, not zero.
            d.taken(lagging(ms(300), Duration::ZERO));
        }
        assert_eq!(d.pulls(), MAX_PULLS);
    }

    #[test]
    fn a_near_reader_needs_no_pulls_ahead() {
        let mut d = Depth::default();
        // The answer takes less time than the reader spends on one: the
        // one pull made while the reader works is enough.
        for _ in 0..20 {
            d.taken(lagging(ms(1), ms(5)));
        }
        assert_eq!(d.pulls(), 1);
        assert!(!d.wants_more());
    }

    #[test]
    fn one_pause_of_the_reader_moves_the_depth_by_little() {
        let mut d = Depth::default();
        for _ in 0..50 {
            d.taken(lagging(ms(100), ms(10)));
        }
        // A checkpoint commit held the reader for half a second once.
        d.taken(lagging(ms(100), ms(500)));
        assert!(d.pulls() >= 2, "depth {} after one pause", d.pulls());
        for _ in 0..60 {
            d.taken(lagging(ms(100), ms(10)));
        }
        assert_eq!(d.pulls(), 11);
    }

    #[test]
    fn a_shard_that_caught_up_pulls_one_at_a_time() {
        let mut d = Depth::default();
        for _ in 0..6 {
            d.taken(lagging(ms(100), ms(10)));
        }
        assert!(d.wants_more());
        d.taken(Taken {
            lagging: false,
            round_trip: ms(100),
            busy: Some(ms(10)),
            in_flight: 1,
            can_grow: true,
        });
        assert_eq!(d.pulls(), 1);
        assert!(!d.wants_more());
    }

    #[test]
    fn one_wanting_shard_may_use_the_whole_budget() {
        let budget = Budget::new(4 * 100);
        let mut a = budget.share();
        a.want(true);
        let leases: Vec<_> = (0..4).filter_map(|_| a.try_lease(100)).collect();
        assert_eq!(leases.len(), 4);
        assert!(a.try_lease(100).is_none(), "the budget is spent");
        drop(leases);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn wanting_shards_share_the_budget_evenly() {
        let budget = Budget::new(4 * 100);
        let mut a = budget.share();
        let mut b = budget.share();
        a.want(true);
        let first = a.try_lease(100);
        assert!(first.is_some());
        // Another shard wants more: from now on each may hold half.
        b.want(true);
        let second = a.try_lease(100);
        assert!(second.is_some());
        assert!(a.try_lease(100).is_none(), "a is at its half");
        let b_leases: Vec<_> = (0..4).filter_map(|_| b.try_lease(100)).collect();
        assert_eq!(b_leases.len(), 2, "b gets the other half");
        // b stops wanting: a may grow again once there is room.
        drop(b_leases);
        b.want(false);
        assert!(a.try_lease(200).is_some());
    }

    #[test]
    fn a_share_may_be_passed_by_one_pull_but_never_the_budget() {
        let budget = Budget::new(1000);
        let mut a = budget.share();
        let mut b = budget.share();
        a.want(true);
        b.want(true);
        // Shares of 500; pulls of 300: the second passes a's share...
        let a1 = a.try_lease(300);
        let a2 = a.try_lease(300);
        assert!(a1.is_some() && a2.is_some());
        // ...and a third would not start while a is over it.
        assert!(a.try_lease(300).is_none());
        // b gets one; a second would pass the budget itself (600 + 600).
        let b1 = b.try_lease(300);
        assert!(b1.is_some());
        assert!(b.try_lease(300).is_none(), "never past the whole budget");
        assert_eq!(budget.used(), 900);
    }

    #[test]
    fn a_dropped_share_stops_wanting() {
        let budget = Budget::new(200);
        let mut a = budget.share();
        let held = {
            let mut b = budget.share();
            b.want(true);
            a.want(true);
            let first = a.try_lease(100);
            assert!(first.is_some());
            assert!(a.try_lease(100).is_none(), "half each while b wants");
            first
        };
        // b is gone: a may have the whole budget.
        assert!(a.try_lease(100).is_some());
        drop(held);
    }

    #[test]
    fn an_empty_budget_leases_nothing() {
        let budget = Budget::new(0);
        let mut a = budget.share();
        a.want(true);
        assert!(a.try_lease(1).is_none());
    }
}
