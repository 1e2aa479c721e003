//! The consumer-group state machine (protocol notes §5.1): consumer liveness, server-side
//! shard assignment through heartbeats, and checkpoint ownership rules.
//!
//! State kept per group: the live consumers with their last heartbeat, one assignment per
//! consumable shard (absent = *not_alloc*, [`Assign::Held`] = *already_alloc*,
//! [`Assign::Transfer`] = *transfer*), and the checkpoints. *over* (a read-only shard whose
//! checkpoint equals its end) and *wait* (`order=true` and an unfinished parent) are derived
//! from the shard list and the checkpoints on every heartbeat instead of being stored, so
//! they cannot go stale after a split, a merge or a forced checkpoint (rule 7).
//!
//! Hand-over is by omission: a shard to be moved goes to *transfer*; the heartbeat response
//! stops listing it to its holder; once the holder's heartbeat omits it, the next consumer
//! gets it. A shard merely *assigned* (held) but not yet listed by its consumer is not
//! released by omission: a new consumer's first heartbeats legitimately omit the shards it
//! was just given.
//!
//! Time is passed in (`now`) so tests drive expiry without sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cursor;
use crate::error::ApiError;

/// What the group needs to know about one shard of its logstore.
#[derive(Debug, Clone)]
pub struct ShardView {
    /// Shard id.
    pub id: u32,
    /// `readonly` after a split or merge.
    pub readonly: bool,
    /// Cursor position just past the shard's newest group.
    pub end_position: i64,
    /// Shards this one was split or merged from (for `order=true`).
    pub parents: Vec<u32>,
}

/// Assignment of a consumable shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    /// *already_alloc*: owned by this consumer.
    Held(String),
    /// *transfer*: still owned by `from`, to go to `to` once `from` omits it.
    Transfer {
        /// Current holder.
        from: String,
        /// Designated next holder.
        to: String,
    },
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The cursor as the client sent it.
    pub cursor: String,
    /// Update time, unix microseconds (the unit of the docs' example).
    pub update_time_us: i64,
    /// Consumer named in the update (may be empty).
    pub consumer: String,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    /// Name.
    pub name: String,
    /// Seconds without heartbeat after which a consumer is dropped.
    pub timeout_secs: u32,
    /// Ordered consumption across split/merge.
    pub order: bool,
    consumers: BTreeMap<String, Instant>,
    assignment: BTreeMap<u32, Assign>,
    checkpoints: BTreeMap<u32, Checkpoint>,
}

impl ConsumerGroup {
    /// A new group with no consumers and no checkpoints.
    pub fn new(name: &str, timeout_secs: u32, order: bool) -> Self {
        Self {
            name: name.to_owned(),
            timeout_secs,
            order,
            consumers: BTreeMap::new(),
            assignment: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
        }
    }

    /// Rebuilds a group from persisted parts (consumers are not persisted: they re-join).
    pub fn restore(
        name: &str,
        timeout_secs: u32,
        order: bool,
        checkpoints: BTreeMap<u32, Checkpoint>,
    ) -> Self {
        Self {
            checkpoints,
            ..Self::new(name, timeout_secs, order)
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs.max(1)))
    }

    /// Drops consumers whose last heartbeat is `timeout` or more ago, releasing their shards.
    pub fn expire(&mut self, now: Instant) {
        let timeout = self.timeout();
        let dead: Vec<String> = self
            .consumers
            .iter()
            .filter(|(_, last)| now.saturating_duration_since(**last) >= timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for name in dead {
            self.remove_consumer(&name);
        }
    }

    /// Removes a consumer at once (fault injection: "force a consumer to expire").
    /// Returns whether it was known.
    pub fn remove_consumer(&mut self, name: &str) -> bool {
        if self.consumers.remove(name).is_none() {
            return false;
        }
        let mut updates = Vec::new();
        for (id, a) in &self.assignment {
            match a {
                Assign::Held(c) if c == name => updates.push((*id, None)),
                // rule 9: transfer -> not_alloc when the holder times out
                Assign::Transfer { from, .. } if from == name => updates.push((*id, None)),
                // rule 6 (other branch): stays with the holder if the next consumer goes
                Assign::Transfer { from, to } if to == name => {
                    updates.push((*id, Some(Assign::Held(from.clone()))))
                }
                _ => {}
            }
        }
        for (id, a) in updates {
            match a {
                Some(a) => self.assignment.insert(id, a),
                None => self.assignment.remove(&id),
            };
        }
        true
    }

    /// Live consumer names.
    pub fn consumers(&self) -> impl Iterator<Item = &str> {
        self.consumers.keys().map(String::as_str)
    }

    /// Current assignment (shard → state).
    pub fn assignment(&self) -> &BTreeMap<u32, Assign> {
        &self.assignment
    }

    /// Stored checkpoints by shard.
    pub fn checkpoints(&self) -> &BTreeMap<u32, Checkpoint> {
        &self.checkpoints
    }

    fn is_over(&self, s: &ShardView) -> bool {
        s.readonly
            && self
                .checkpoints
                .get(&s.id)
                .and_then(|c| cursor::decode(&c.cursor).ok())
                .is_some_and(|p| p == s.end_position)
    }

    fn is_waiting(&self, s: &ShardView, shards: &[ShardView]) -> bool {
        self.order
            && s.parents
                .iter()
                .filter_map(|p| shards.iter().find(|x| x.id == *p))
                .any(|parent| !self.is_over(parent))
    }

    /// A heartbeat from `consumer` saying it holds `held`. Returns the shards it should hold.
    ///
    /// # Errors
    /// `400 NotExistConsumerWithBody` when an unknown (new or timed-out) consumer sends a
    /// non-empty list.
    pub fn heartbeat(
        &mut self,
        consumer: &str,
        held: &[u32],
        shards: &[ShardView],
        now: Instant,
    ) -> Result<Vec<u32>, ApiError> {
        self.expire(now);
        if !self.consumers.contains_key(consumer) && !held.is_empty() {
            return Err(ApiError::new(
                400,
                "NotExistConsumerWithBody",
                format!(
                    "consumer {consumer} does not exist in group {}; join with an empty shard list",
                    self.name
                ),
            ));
        }
        self.consumers.insert(consumer.to_owned(), now);
        // hand-over by omission (rule 6)
        let held: BTreeSet<u32> = held.iter().copied().collect();
        for a in self.assignment.iter_mut() {
            if let Assign::Transfer { from, to } = a.1 {
                if from == consumer && !held.contains(a.0) {
                    *a.1 = Assign::Held(to.clone());
                }
            }
        }
        self.rebalance(shards);
        Ok(self.held_by(consumer))
    }

    /// Shards in *already_alloc* held by `consumer`, ascending.
    pub fn held_by(&self, consumer: &str) -> Vec<u32> {
        self.assignment
            .iter()
            .filter(|(_, a)| matches!(a, Assign::Held(c) if c == consumer))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Who `shard` counts for when balancing.
    fn destined(a: &Assign) -> &str {
        match a {
            Assign::Held(c) => c,
            Assign::Transfer { to, .. } => to,
        }
    }

    /// Brings the assignment in line with the shard list and the live consumers: drops
    /// shards that are gone, *over* or *waiting*, gives unassigned ones to the least loaded
    /// consumers, then moves shards (via *transfer*) until counts differ by at most one.
    pub fn rebalance(&mut self, shards: &[ShardView]) {
        let consumable: BTreeSet<u32> = shards
            .iter()
            .filter(|s| !self.is_over(s) && !self.is_waiting(s, shards))
            .map(|s| s.id)
            .collect();
        self.assignment.retain(|id, _| consumable.contains(id));
        if self.consumers.is_empty() {
            return;
        }
        let mut counts: BTreeMap<String, usize> =
            self.consumers.keys().map(|c| (c.clone(), 0)).collect();
        for a in self.assignment.values() {
            if let Some(n) = counts.get_mut(Self::destined(a)) {
                *n += 1;
            }
        }
        let least = |counts: &BTreeMap<String, usize>| {
            counts
                .iter()
                .min_by_key(|(_, n)| **n)
                .map(|(c, n)| (c.clone(), *n))
        };
        for id in consumable {
            if self.assignment.contains_key(&id) {
                continue;
            }
            if let Some((c, _)) = least(&counts) {
                *counts.entry(c.clone()).or_default() += 1;
                self.assignment.insert(id, Assign::Held(c));
            }
        }
        while let Some((min_c, min_n)) = least(&counts) {
            let Some((max_c, max_n)) = counts
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(c, n)| (c.clone(), *n))
            else {
                break;
            };
            if max_n <= min_n + 1 {
                break;
            }
            // Prefer redirecting a pending transfer to max_c; else start moving its
            // highest-numbered held shard.
            let pick = self
                .assignment
                .iter()
                .rev()
                .find(|(_, a)| matches!(a, Assign::Transfer { to, .. } if *to == max_c))
                .or_else(|| {
                    self.assignment
                        .iter()
                        .rev()
                        .find(|(_, a)| matches!(a, Assign::Held(c) if *c == max_c))
                })
                .map(|(id, a)| (*id, a.clone()));
            let Some((id, a)) = pick else { break };
            let next = match a {
                Assign::Transfer { from, .. } if from == min_c => Assign::Held(from),
                Assign::Transfer { from, .. } => Assign::Transfer {
                    from,
                    to: min_c.clone(),
                },
                Assign::Held(from) => Assign::Transfer {
                    from,
                    to: min_c.clone(),
                },
            };
            self.assignment.insert(id, next);
            *counts.entry(max_c).or_default() -= 1;
            *counts.entry(min_c).or_default() += 1;
        }
    }

    /// UpdateCheckPoint (§2.6): with `force` always stored; without, only by a live
    /// consumer that holds the shard (held or in transfer from it).
    ///
    /// # Errors
    /// `InvalidShardCheckPoint`, `ParameterInvalid`, `ConsumerNotExist`, `ConsumerNotMatch`.
    pub fn update_checkpoint(
        &mut self,
        consumer: &str,
        force: bool,
        shard: u32,
        checkpoint: &str,
        now_us: i64,
        now: Instant,
    ) -> Result<(), ApiError> {
        if cursor::decode(checkpoint).is_err() {
            return Err(ApiError::new(
                400,
                "InvalidShardCheckPoint",
                format!("invalid checkpoint {checkpoint:?}"),
            ));
        }
        if !force {
            self.expire(now);
            if consumer.is_empty() {
                return Err(ApiError::param(
                    "consumer is required when forceSuccess is false",
                ));
            }
            if !self.consumers.contains_key(consumer) {
                return Err(ApiError::new(
                    404,
                    "ConsumerNotExist",
                    format!("consumer {consumer} does not exist"),
                ));
            }
            let owns = match self.assignment.get(&shard) {
                Some(Assign::Held(c)) => c == consumer,
                Some(Assign::Transfer { from, .. }) => from == consumer,
                None => false,
            };
            if !owns {
                return Err(ApiError::new(
                    400,
                    "ConsumerNotMatch",
                    format!("consumer {consumer} does not hold shard {shard}"),
                ));
            }
        }
        self.checkpoints.insert(
            shard,
            Checkpoint {
                cursor: checkpoint.trim().to_owned(),
                update_time_us: now_us,
                consumer: consumer.to_owned(),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(n: u32) -> Vec<ShardView> {
        (0..n)
            .map(|id| ShardView {
                id,
                readonly: false,
                end_position: 100,
                parents: vec![],
            })
            .collect()
    }

    fn counts(g: &ConsumerGroup) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in g.consumers() {
            m.insert(c.to_owned(), g.held_by(c).len());
        }
        m
    }

    /// Runs heartbeats from every consumer, each sending what it was last told, until the
    /// assignment stops changing.
    fn settle(
        g: &mut ConsumerGroup,
        names: &[&str],
        s: &[ShardView],
        now: Instant,
    ) -> BTreeMap<String, Vec<u32>> {
        let mut held: BTreeMap<String, Vec<u32>> =
            names.iter().map(|n| (n.to_string(), vec![])).collect();
        for _ in 0..10 {
            for n in names {
                let mine = held[*n].clone();
                let got = g.heartbeat(n, &mine, s, now).expect("heartbeat");
                held.insert(n.to_string(), got);
            }
        }
        held
    }

    #[test]
    fn single_consumer_gets_every_shard() {
        let mut g = ConsumerGroup::new("g", 40, false);
        let now = Instant::now();
        assert_eq!(
            g.heartbeat("a", &[], &shards(4), now).expect("hb"),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn balance_is_within_one_for_any_count() {
        for n_shards in 1..9u32 {
            for n_consumers in 1..6usize {
                let names: Vec<String> = (0..n_consumers).map(|i| format!("c{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut g = ConsumerGroup::new("g", 40, false);
                let held = settle(&mut g, &refs, &shards(n_shards), Instant::now());
                let sizes: Vec<usize> = held.values().map(Vec::len).collect();
                let (min, max) = (
                    sizes.iter().min().copied().unwrap_or(0),
                    sizes.iter().max().copied().unwrap_or(0),
                );
                assert!(
                    max - min <= 1,
                    "{n_shards} shards / {n_consumers} consumers: {held:?}"
                );
                let mut all: Vec<u32> = held.values().flatten().copied().collect();
                all.sort_unstable();
                assert_eq!(
                    all,
                    (0..n_shards).collect::<Vec<_>>(),
                    "every shard exactly once"
                );
            }
        }
    }

    #[test]
    fn new_consumer_gets_shards_only_after_holder_omits_them() {
        let s = shards(2);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 40, false);
        assert_eq!(g.heartbeat("a", &[], &s, now).expect("hb"), vec![0, 1]);
        assert_eq!(g.heartbeat("a", &[0, 1], &s, now).expect("hb"), vec![0, 1]);
        // b joins: shard 1 goes to transfer; nobody holds it in responses yet
        assert_eq!(
            g.heartbeat("b", &[], &s, now).expect("hb"),
            Vec::<u32>::new()
        );
        assert_eq!(g.heartbeat("a", &[0, 1], &s, now).expect("hb"), vec![0]);
        assert_eq!(
            g.heartbeat("b", &[], &s, now).expect("hb"),
            Vec::<u32>::new(),
            "a still lists 1"
        );
        // a finished shard 1 and omits it: hand-over
        assert_eq!(g.heartbeat("a", &[0], &s, now).expect("hb"), vec![0]);
        assert_eq!(g.heartbeat("b", &[], &s, now).expect("hb"), vec![1]);
        // a checkpoint by the old holder without force is refused after the hand-over
        let err = g
            .update_checkpoint("a", false, 1, "MTAwMA==", 0, now)
            .expect_err("not owner");
        assert_eq!(err.code, "ConsumerNotMatch");
    }

    #[test]
    fn timed_out_consumer_loses_its_shards() {
        let s = shards(2);
        let t0 = Instant::now();
        let mut g = ConsumerGroup::new("g", 10, false);
        settle(&mut g, &["a", "b"], &s, t0);
        assert_eq!(counts(&g).values().copied().collect::<Vec<_>>(), vec![1, 1]);
        // only b keeps heart-beating
        let t1 = t0 + Duration::from_secs(5);
        g.heartbeat("b", &g.held_by("b"), &s, t1).expect("hb");
        let t2 = t0 + Duration::from_secs(11);
        let got = g.heartbeat("b", &g.held_by("b"), &s, t2).expect("hb");
        assert_eq!(got, vec![0, 1]);
        assert_eq!(g.consumers().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn unknown_consumer_with_body_is_refused() {
        let mut g = ConsumerGroup::new("g", 10, false);
        let err = g
            .heartbeat("ghost", &[0], &shards(1), Instant::now())
            .expect_err("refused");
        assert_eq!((err.status, err.code), (400, "NotExistConsumerWithBody"));
    }

    #[test]
    fn forced_expiry_releases_at_once() {
        let s = shards(2);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 60, false);
        settle(&mut g, &["a", "b"], &s, now);
        assert!(g.remove_consumer("a"));
        assert_eq!(
            g.heartbeat("b", &g.held_by("b"), &s, now).expect("hb"),
            vec![0, 1]
        );
        assert_eq!(
            g.heartbeat("a", &[0], &s, now)
                .expect_err("must rejoin")
                .code,
            "NotExistConsumerWithBody"
        );
    }

    #[test]
    fn checkpoint_ownership_and_force() {
        let s = shards(1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 60, false);
        g.heartbeat("a", &[], &s, now).expect("hb");
        g.update_checkpoint("a", false, 0, "MTAwMA==", 1, now)
            .expect("owner may commit");
        assert_eq!(
            g.update_checkpoint("x", false, 0, "MTAwMA==", 1, now)
                .expect_err("unknown")
                .code,
            "ConsumerNotExist"
        );
        g.heartbeat("b", &[], &s, now).expect("hb");
        assert_eq!(
            g.update_checkpoint("b", false, 0, "MTAwMA==", 1, now)
                .expect_err("not holder")
                .code,
            "ConsumerNotMatch"
        );
        assert_eq!(
            g.update_checkpoint("", false, 0, "MTAwMA==", 1, now)
                .expect_err("no consumer")
                .code,
            "ParameterInvalid"
        );
        g.update_checkpoint("anyone", true, 0, "MTAwMQ==", 2, now)
            .expect("force always wins");
        assert_eq!(g.checkpoints()[&0].cursor, "MTAwMQ==");
        assert_eq!(g.checkpoints()[&0].consumer, "anyone");
        assert_eq!(
            g.update_checkpoint("a", true, 0, "%%%", 3, now)
                .expect_err("bad cursor")
                .code,
            "InvalidShardCheckPoint"
        );
    }

    #[test]
    fn readonly_shard_is_over_once_committed_to_its_end_and_reopens_when_reset() {
        let mut s = shards(2);
        s[0].readonly = true;
        s[0].end_position = 1005;
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 60, false);
        assert_eq!(g.heartbeat("a", &[], &s, now).expect("hb"), vec![0, 1]);
        g.update_checkpoint("a", true, 0, &cursor::encode(1004), 0, now)
            .expect("cp");
        assert_eq!(
            g.heartbeat("a", &[0, 1], &s, now).expect("hb"),
            vec![0, 1],
            "not yet at end"
        );
        g.update_checkpoint("a", true, 0, &cursor::encode(1005), 0, now)
            .expect("cp");
        assert_eq!(
            g.heartbeat("a", &[0, 1], &s, now).expect("hb"),
            vec![1],
            "over"
        );
        g.update_checkpoint("a", true, 0, &cursor::encode(1000), 0, now)
            .expect("cp");
        assert_eq!(
            g.heartbeat("a", &[1], &s, now).expect("hb"),
            vec![0, 1],
            "rule 7"
        );
    }

    #[test]
    fn ordered_group_makes_children_wait_for_parents() {
        let s = vec![
            ShardView {
                id: 0,
                readonly: true,
                end_position: 10,
                parents: vec![],
            },
            ShardView {
                id: 1,
                readonly: false,
                end_position: 0,
                parents: vec![0],
            },
            ShardView {
                id: 2,
                readonly: false,
                end_position: 0,
                parents: vec![0],
            },
        ];
        let now = Instant::now();
        let mut ordered = ConsumerGroup::new("o", 60, true);
        assert_eq!(ordered.heartbeat("a", &[], &s, now).expect("hb"), vec![0]);
        ordered
            .update_checkpoint("a", true, 0, &cursor::encode(10), 0, now)
            .expect("cp");
        assert_eq!(
            ordered.heartbeat("a", &[0], &s, now).expect("hb"),
            vec![1, 2]
        );
        let mut unordered = ConsumerGroup::new("u", 60, false);
        assert_eq!(
            unordered.heartbeat("a", &[], &s, now).expect("hb"),
            vec![0, 1, 2]
        );
    }
}
