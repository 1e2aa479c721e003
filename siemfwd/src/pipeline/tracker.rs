//! The checkpoint tracker: which position of a shard may be committed.
//!
//! Batches of a shard leave for the SIEM in order, each tagged with the
//! position to resume *after* it. Their deliveries may be confirmed in any
//! order (a future sink may write batches of one shard on several
//! connections, RELP acknowledges windows), so the tracker keeps the batches
//! in flight and lets the checkpoint move only over the *contiguous prefix*
//! of delivered batches: never past a batch that was not delivered, never
//! backwards. This is the single rule that makes "nothing lost" true, so the
//! type system guards it: only [`Tracker::committable`] mints a
//! [`Checkpoint`], and a source's commit takes nothing else (rustls'
//! `HandshakeSignatureValid` idea).

use std::collections::VecDeque;

/// A position every earlier record of which has been delivered. Only the
/// tracker makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint<P>(P);

impl<P> Checkpoint<P> {
    /// The position to commit.
    pub fn position(&self) -> &P {
        &self.0
    }
}

/// Ticket for one batch in flight, returned by [`Tracker::sent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

#[derive(Debug)]
struct InFlight<P> {
    ticket: u64,
    end: P,
    delivered: bool,
}

/// Positions of one shard's batches between "read" and "committed".
#[derive(Debug)]
pub(crate) struct Tracker<P> {
    next_ticket: u64,
    in_flight: VecDeque<InFlight<P>>,
    /// The furthest position known delivered and not yet handed out by
    /// [`Tracker::committable`].
    ready: Option<P>,
}

impl<P> Default for Tracker<P> {
    fn default() -> Self {
        Self {
            next_ticket: 0,
            in_flight: VecDeque::new(),
            ready: None,
        }
    }
}

impl<P: Clone> Tracker<P> {
    /// An empty tracker.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A batch ending at `end` left for the sink; batches must be reported in
    /// the order they were read.
    pub(crate) fn sent(&mut self, end: P) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.in_flight.push_back(InFlight {
            ticket,
            end,
            delivered: false,
        });
        Ticket(ticket)
    }

    /// The batch of `ticket` was delivered, or dropped and counted by the
    /// `pipeline.when_blocked = "drop"` policy: either way it is done, and
    /// the checkpoint may pass it. Unknown or repeated tickets are ignored.
    pub(crate) fn delivered(&mut self, ticket: Ticket) {
        if let Some(b) = self.in_flight.iter_mut().find(|b| b.ticket == ticket.0) {
            b.delivered = true;
        }
        while self.in_flight.front().is_some_and(|b| b.delivered) {
            if let Some(b) = self.in_flight.pop_front() {
                self.ready = Some(b.end);
            }
        }
    }

    /// Batches sent and not yet delivered.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The checkpoint to commit now, if the delivered prefix moved since the
    /// last call.
    pub(crate) fn committable(&mut self) -> Option<Checkpoint<P>> {
        self.ready.take().map(Checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn checkpoint_waits_for_the_earliest_batch() {
        let mut t = Tracker::new();
        let a = t.sent(10);
        let b = t.sent(20);
        let c = t.sent(30);
        t.delivered(b);
        assert_eq!(t.committable(), None);
        t.delivered(a);
        assert_eq!(t.committable().map(|c| c.0), Some(20));
        assert_eq!(t.committable(), None, "handed out once");
        t.delivered(c);
        assert_eq!(t.committable().map(|c| c.0), Some(30));
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// Random sends and deliveries against a model: the checkpoint never
        /// passes an undelivered batch, never goes backwards, and reaches the
        /// end once everything is delivered.
        #[test]
        fn never_passes_an_undelivered_batch(
            n in 1usize..40,
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
        ) {
            let mut t = Tracker::new();
            let tickets: Vec<Ticket> = (1..=n).map(|i| t.sent(i)).collect();
            let mut delivered = vec![false; n];
            let mut last = 0usize;
            for ix in order {
                let i = ix.index(n);
                t.delivered(tickets[i]);
                delivered[i] = true;
                if let Some(c) = t.committable() {
                    let pos = c.0;
                    prop_assert!(pos > last, "moved backwards or stood still");
                    prop_assert!(delivered[..pos].iter().all(|d| *d), "passed an undelivered batch");
                    last = pos;
                }
                // The model's contiguous prefix is what the tracker reports.
                let prefix = delivered.iter().take_while(|d| **d).count();
                prop_assert_eq!(last, prefix);
            }
            for tk in &tickets { t.delivered(*tk); }
            if last < n {
                prop_assert_eq!(t.committable().map(|c| c.0), Some(n));
            }
        }
    }
}
