//! The in-memory Log Service model: projects → logstores → shards (each an append-only list
//! of encoded log groups with their receive times) and consumer groups.
//!
//! Cursor positions follow protocol notes §3: a shard has an int64 `base`; the group at index
//! `k` has position `base + k`. Expiry (TTL or fault injection) advances `first`, the index
//! of the oldest retained group, and drops the data before it; positions never move.
//! Every method returns SLS errors ([`ApiError`]) so HTTP routes and the direct library API
//! refuse the same things.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;

use crate::cursor;
use crate::error::ApiError;
use crate::group::{ConsumerGroup, ShardView};
use crate::proto::LogGroup;

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Current unix time in microseconds.
pub fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One stored log group.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    /// Server receive time, unix seconds (what `from=<unix>` and `cursor_time` use).
    pub receive_time: i64,
    /// The `LogGroup` bytes as the writer sent them (after decompression).
    pub data: Bytes,
}

/// A shard.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Shard id.
    pub id: u32,
    /// `readonly` after split/merge.
    pub readonly: bool,
    /// Inclusive begin of the hash range.
    pub begin_key: u128,
    /// Exclusive end of the hash range (`u128::MAX` for the last shard).
    pub end_key: u128,
    /// Unix seconds.
    pub create_time: i64,
    /// Cursor position of index 0.
    pub base: i64,
    /// Index of the oldest retained group.
    pub first: usize,
    /// All groups ever written; those before `first` have empty data.
    pub groups: Vec<StoredGroup>,
    /// Shards this one came from.
    pub parents: Vec<u32>,
}

/// Result of a PullLogs read.
#[derive(Debug)]
pub struct Pulled {
    /// Encoded `LogGroup`s.
    pub groups: Vec<Bytes>,
    /// Position after the last returned group (= request position when none).
    pub next: i64,
    /// Shard end position at the time of the read.
    pub end: i64,
}

impl Shard {
    fn new(id: u32, begin_key: u128, end_key: u128, parents: Vec<u32>) -> Self {
        let now = unix_now();
        // Production cursors look like nanosecond timestamps; any large base will do, and
        // distinct shards get distinct bases so a cursor from one shard is rarely valid on
        // another.
        let base = now
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(id) * 1_000_000_000_000);
        Self {
            id,
            readonly: false,
            begin_key,
            end_key,
            create_time: now,
            base,
            first: 0,
            groups: Vec::new(),
            parents,
        }
    }

    /// Position of the oldest retained group.
    pub fn begin_position(&self) -> i64 {
        self.base + self.first as i64
    }

    /// Position just past the newest group.
    pub fn end_position(&self) -> i64 {
        self.base + self.groups.len() as i64
    }

    fn index_of(&self, position: i64) -> Result<usize, ApiError> {
        if position < self.begin_position() || position > self.end_position() {
            return Err(ApiError::cursor(format!(
                "cursor position {position} is outside [{}, {}] of shard {}",
                self.begin_position(),
                self.end_position(),
                self.id
            )));
        }
        Ok((position - self.base) as usize)
    }

    /// Drops groups before index `keep_from` (cursor expiry).
    pub fn expire_before(&mut self, keep_from: usize) {
        let keep_from = keep_from.min(self.groups.len());
        for g in &mut self.groups[self.first.min(keep_from)..keep_from] {
            g.data = Bytes::new();
        }
        self.first = self.first.max(keep_from);
    }

    fn apply_ttl(&mut self, ttl: Option<Duration>) {
        if let Some(ttl) = ttl {
            let oldest = unix_now() - ttl.as_secs() as i64;
            let keep =
                self.first + self.groups[self.first..].partition_point(|g| g.receive_time < oldest);
            self.expire_before(keep);
        }
    }

    /// GetCursor `from` (§2.2): `begin`, `end` or unix seconds (receive time).
    ///
    /// # Errors
    /// `ParameterInvalid` for anything else.
    pub fn cursor_for(&self, from: &str) -> Result<i64, ApiError> {
        match from {
            "begin" => Ok(self.begin_position()),
            "end" => Ok(self.end_position()),
            t => {
                let t: i64 = t
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::param("Parameter From is not valid"))?;
                let retained = &self.groups[self.first..];
                Ok(self.begin_position() + retained.partition_point(|g| g.receive_time < t) as i64)
            }
        }
    }

    /// GetCursorTime (§2.3).
    ///
    /// # Errors
    /// `InvalidCursor` for a malformed or out-of-range cursor.
    pub fn cursor_time(&self, cursor_text: &str) -> Result<i64, ApiError> {
        let pos = cursor::decode(cursor_text).map_err(|e| ApiError::cursor(e.to_string()))?;
        let idx = self.index_of(pos)?;
        Ok(match self.groups.get(idx) {
            Some(g) => g.receive_time,
            None => self.groups.last().map_or_else(unix_now, |g| g.receive_time),
        })
    }

    /// PullLogs (§2.4).
    ///
    /// # Errors
    /// `InvalidCursor` for a malformed, expired or out-of-range cursor or end cursor.
    pub fn pull(
        &self,
        cursor_text: &str,
        count: usize,
        end_cursor: Option<&str>,
    ) -> Result<Pulled, ApiError> {
        let pos = cursor::decode(cursor_text)
            .map_err(|e| ApiError::cursor(format!("cursor {cursor_text:?}: {e}")))?;
        let start = self.index_of(pos)?;
        let mut stop = self.groups.len();
        if let Some(end) = end_cursor {
            let end_pos = cursor::decode(end)
                .map_err(|e| ApiError::cursor(format!("end_cursor {end:?}: {e}")))?;
            let end_idx = (end_pos - self.base).clamp(0, self.groups.len() as i64) as usize;
            stop = stop.min(end_idx);
        }
        let stop = stop.max(start).min(start + count);
        let groups: Vec<Bytes> = self.groups[start..stop]
            .iter()
            .map(|g| g.data.clone())
            .collect();
        Ok(Pulled {
            next: self.base + stop as i64,
            groups,
            end: self.end_position(),
        })
    }

    /// Appends groups, returning the position of the first.
    pub fn append(&mut self, groups: impl IntoIterator<Item = Bytes>, receive_time: i64) -> i64 {
        let first = self.end_position();
        self.groups.extend(
            groups
                .into_iter()
                .map(|data| StoredGroup { receive_time, data }),
        );
        first
    }

    /// `inclusiveBeginKey` as 32 lower-case hex digits.
    pub fn begin_hex(&self) -> String {
        format!("{:032x}", self.begin_key)
    }

    /// `exclusiveEndKey` as 32 lower-case hex digits.
    pub fn end_hex(&self) -> String {
        format!("{:032x}", self.end_key)
    }
}

/// A logstore.
#[derive(Debug, Clone)]
pub struct Logstore {
    /// Shards by id (read-only ones included until deleted).
    pub shards: BTreeMap<u32, Shard>,
    /// Consumer groups by name.
    pub groups: BTreeMap<String, ConsumerGroup>,
    /// Next id for a shard made by split/merge.
    pub next_shard_id: u32,
    /// Round-robin counter for `/shards/lb` writes.
    pub lb_next: usize,
    /// Data retention (`ttl` in days on the API; enforced only when the emulator has a TTL).
    pub ttl_days: u32,
}

impl Logstore {
    /// A logstore with `n` read-write shards splitting the hash space evenly.
    pub fn new(n: u32) -> Self {
        let n = n.max(1);
        // Boundary i is floor(i * 2^128 / n), computed without overflow from
        // 2^128 = n * q + (u128::MAX % n + 1); four shards split at 4000…, 8000…, c000….
        let n128 = u128::from(n);
        let (q, r) = (u128::MAX / n128, u128::MAX % n128 + 1);
        let boundary = |i: u32| q * u128::from(i) + (u128::from(i) * r) / n128;
        let shards = (0..n)
            .map(|i| {
                let begin = boundary(i);
                let end = if i + 1 == n {
                    u128::MAX
                } else {
                    boundary(i + 1)
                };
                (i, Shard::new(i, begin, end, vec![]))
            })
            .collect();
        Self {
            shards,
            groups: BTreeMap::new(),
            next_shard_id: n,
            lb_next: 0,
            ttl_days: 30,
        }
    }

    /// Shard views for the consumer-group state machine.
    pub fn shard_views(&self) -> Vec<ShardView> {
        self.shards
            .values()
            .map(|s| ShardView {
                id: s.id,
                readonly: s.readonly,
                end_position: s.end_position(),
                parents: s.parents.clone(),
            })
            .collect()
    }

    /// The shard for a read, after applying the TTL.
    ///
    /// # Errors
    /// `ShardNotExist`.
    pub fn shard_mut(&mut self, id: u32, ttl: Option<Duration>) -> Result<&mut Shard, ApiError> {
        let s = self
            .shards
            .get_mut(&id)
            .ok_or_else(|| ApiError::no_shard(id))?;
        s.apply_ttl(ttl);
        Ok(s)
    }

    /// Picks the shard for a PutLogs: by hash key (`route`) or round-robin over read-write
    /// shards (`lb`).
    ///
    /// # Errors
    /// `LogStoreWithoutShard` when no shard is writable; `ParameterInvalid` for a bad key.
    pub fn write_shard(&mut self, hash_key: Option<&str>) -> Result<u32, ApiError> {
        let writable: Vec<&Shard> = self.shards.values().filter(|s| !s.readonly).collect();
        if writable.is_empty() {
            return Err(ApiError::new(
                400,
                "LogStoreWithoutShard",
                "logstore has no writable shard",
            ));
        }
        match hash_key {
            Some(k) => {
                let key = parse_hash_key(k)?;
                let s = writable
                    .iter()
                    .find(|s| s.begin_key <= key && (key < s.end_key || s.end_key == u128::MAX))
                    .or_else(|| writable.iter().rev().find(|s| s.begin_key <= key))
                    .unwrap_or(&writable[0]);
                Ok(s.id)
            }
            None => {
                let id = writable[self.lb_next % writable.len()].id;
                self.lb_next = self.lb_next.wrapping_add(1);
                Ok(id)
            }
        }
    }

    /// CreateConsumerGroup (§2.6) with the per-logstore quota of §7.
    ///
    /// # Errors
    /// `ConsumerGroupAlreadyExist`, `ConsumerGroupQuotaExceed` (both 400).
    pub fn create_group(
        &mut self,
        name: &str,
        timeout_secs: u32,
        order: bool,
        quota: usize,
    ) -> Result<(), ApiError> {
        if self.groups.contains_key(name) {
            return Err(ApiError::new(
                400,
                "ConsumerGroupAlreadyExist",
                format!("consumer group {name} already exists"),
            ));
        }
        if self.groups.len() >= quota {
            return Err(ApiError::new(
                400,
                "ConsumerGroupQuotaExceed",
                format!(
                    "the logstore already has {} consumer groups (quota {quota})",
                    self.groups.len()
                ),
            ));
        }
        self.groups.insert(
            name.to_owned(),
            ConsumerGroup::new(name, timeout_secs, order),
        );
        Ok(())
    }

    /// Split (§2.7): the parent turns read-only; two new shards take its range.
    ///
    /// # Errors
    /// `ParameterInvalid` for an unknown/read-only shard or a key outside its range.
    pub fn split(&mut self, id: u32, mid_key: &str) -> Result<(), ApiError> {
        let mid = parse_hash_key(mid_key).map_err(|_| ApiError::param("invalid mid hash"))?;
        let parent = self
            .shards
            .get_mut(&id)
            .filter(|s| !s.readonly)
            .ok_or_else(|| ApiError::param("invalid shard id"))?;
        if mid <= parent.begin_key || mid >= parent.end_key {
            return Err(ApiError::param("invalid mid hash"));
        }
        parent.readonly = true;
        let (begin, end) = (parent.begin_key, parent.end_key);
        let a = self.next_shard_id;
        self.next_shard_id += 2;
        self.shards.insert(a, Shard::new(a, begin, mid, vec![id]));
        self.shards
            .insert(a + 1, Shard::new(a + 1, mid, end, vec![id]));
        Ok(())
    }

    /// Merge (§2.7): `id` and its right neighbour turn read-only; a new shard covers both.
    ///
    /// # Errors
    /// `ParameterInvalid` for an unknown/read-only shard or the last shard.
    pub fn merge(&mut self, id: u32) -> Result<(), ApiError> {
        let left = self
            .shards
            .get(&id)
            .filter(|s| !s.readonly)
            .ok_or_else(|| ApiError::param("invalid shard id"))?;
        let (begin, left_end) = (left.begin_key, left.end_key);
        let right = self
            .shards
            .values()
            .find(|s| !s.readonly && s.begin_key == left_end && s.id != id)
            .ok_or_else(|| ApiError::param("can not merge the last shard"))?;
        let (right_id, end) = (right.id, right.end_key);
        for sid in [id, right_id] {
            if let Some(s) = self.shards.get_mut(&sid) {
                s.readonly = true;
            }
        }
        let n = self.next_shard_id;
        self.next_shard_id += 1;
        self.shards
            .insert(n, Shard::new(n, begin, end, vec![id, right_id]));
        Ok(())
    }
}

fn parse_hash_key(k: &str) -> Result<u128, ApiError> {
    let k = k.trim();
    if k.is_empty() || k.len() > 32 {
        return Err(ApiError::param(format!("invalid hash key {k:?}")));
    }
    // Shorter keys are left-aligned in the 128-bit space, as SLS pads them with zeros.
    let v = u128::from_str_radix(k, 16)
        .map_err(|_| ApiError::param(format!("invalid hash key {k:?}")))?;
    Ok(v << (4 * (32 - k.len())))
}

/// A project.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// Logstores by name.
    pub logstores: BTreeMap<String, Logstore>,
}

/// Whole emulator state.
#[derive(Debug, Default)]
pub struct Store {
    /// Projects by name.
    pub projects: BTreeMap<String, Project>,
    /// Set when auto-creation added a project or logstore that is not yet persisted.
    pub created: bool,
}

/// Decodes and checks a PutLogs body (one `LogGroup`); returns the number of logs.
///
/// # Errors
/// `PostBodyInvalid` when it is not a `LogGroup`.
pub fn validate_log_group(data: &[u8]) -> Result<usize, ApiError> {
    let g = LogGroup::decode(data).map_err(|e| {
        ApiError::new(
            400,
            "PostBodyInvalid",
            format!("body is not a LogGroup: {e}"),
        )
    })?;
    Ok(g.logs.len())
}

impl Store {
    /// The logstore, creating project and logstore when `auto_shards` is given.
    ///
    /// # Errors
    /// `ProjectNotExist` / `LogStoreNotExist`.
    pub fn logstore_mut(
        &mut self,
        project: &str,
        logstore: &str,
        auto_shards: Option<u32>,
    ) -> Result<&mut Logstore, ApiError> {
        if auto_shards.is_some() && !self.projects.contains_key(project) {
            self.projects.insert(project.to_owned(), Project::default());
            self.created = true;
        }
        let p = self
            .projects
            .get_mut(project)
            .ok_or_else(|| ApiError::no_project(project))?;
        match auto_shards {
            Some(n) => {
                if !p.logstores.contains_key(logstore) {
                    p.logstores.insert(logstore.to_owned(), Logstore::new(n));
                    self.created = true;
                }
                p.logstores
                    .get_mut(logstore)
                    .ok_or_else(|| ApiError::no_logstore(logstore))
            }
            None => p
                .logstores
                .get_mut(logstore)
                .ok_or_else(|| ApiError::no_logstore(logstore)),
        }
    }

    /// Creates a project (no-op if it exists).
    pub fn create_project(&mut self, project: &str) {
        self.projects.entry(project.to_owned()).or_default();
    }

    /// Creates a logstore with `shards` shards.
    ///
    /// # Errors
    /// `LogStoreAlreadyExist` when present; `ProjectNotExist` when the project is missing.
    pub fn create_logstore(
        &mut self,
        project: &str,
        logstore: &str,
        shards: u32,
    ) -> Result<(), ApiError> {
        let p = self
            .projects
            .get_mut(project)
            .ok_or_else(|| ApiError::no_project(project))?;
        if p.logstores.contains_key(logstore) {
            return Err(ApiError::new(
                400,
                "LogStoreAlreadyExist",
                format!("logstore {logstore} already exists"),
            ));
        }
        p.logstores
            .insert(logstore.to_owned(), Logstore::new(shards));
        Ok(())
    }
}

/// Heartbeat helper tying a group to its logstore's shard list.
///
/// # Errors
/// `ConsumerGroupNotExist` or the group's own refusals.
pub fn heartbeat(
    ls: &mut Logstore,
    group: &str,
    consumer: &str,
    held: &[u32],
    now: Instant,
) -> Result<Vec<u32>, ApiError> {
    let views = ls.shard_views();
    let g = ls
        .groups
        .get_mut(group)
        .ok_or_else(|| ApiError::no_group(group))?;
    g.heartbeat(consumer, held, &views, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize) -> Shard {
        let mut s = Shard::new(0, 0, u128::MAX, vec![]);
        for i in 0..n {
            s.append([Bytes::from(vec![i as u8])], 1000 + i as i64);
        }
        s
    }

    #[test]
    fn positions_advance_by_one_per_group() {
        let s = filled(5);
        assert_eq!(s.end_position() - s.begin_position(), 5);
        let p = s
            .pull(&cursor::encode(s.begin_position()), 2, None)
            .expect("pull");
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.next, s.begin_position() + 2);
    }

    #[test]
    fn pulling_at_end_returns_nothing_and_the_same_cursor() {
        let s = filled(3);
        let end = s.end_position();
        let p = s.pull(&cursor::encode(end), 1000, None).expect("pull");
        assert!(p.groups.is_empty());
        assert_eq!(p.next, end);
    }

    #[test]
    fn end_cursor_bounds_the_read() {
        let s = filled(10);
        let b = s.begin_position();
        let p = s
            .pull(&cursor::encode(b), 1000, Some(&cursor::encode(b + 4)))
            .expect("pull");
        assert_eq!(p.groups.len(), 4);
        assert_eq!(p.next, b + 4);
    }

    #[test]
    fn cursor_from_time_finds_first_group_received_at_or_after() {
        let s = filled(5); // receive times 1000..=1004
        let b = s.begin_position();
        assert_eq!(s.cursor_for("1002"), Ok(b + 2));
        assert_eq!(s.cursor_for("0"), Ok(b));
        assert_eq!(s.cursor_for("99999"), Ok(b + 5));
        assert_eq!(s.cursor_for("begin"), Ok(b));
        assert_eq!(s.cursor_for("end"), Ok(b + 5));
        assert_eq!(
            s.cursor_for("yesterday").expect_err("bad").code,
            "ParameterInvalid"
        );
        assert_eq!(s.cursor_time(&cursor::encode(b + 3)), Ok(1003));
    }

    #[test]
    fn expired_and_out_of_range_cursors_are_invalid() {
        let mut s = filled(5);
        let b = s.begin_position();
        s.expire_before(2);
        assert_eq!(s.begin_position(), b + 2);
        assert_eq!(
            s.pull(&cursor::encode(b), 10, None)
                .expect_err("expired")
                .code,
            "InvalidCursor"
        );
        assert_eq!(
            s.pull(&cursor::encode(b + 6), 10, None)
                .expect_err("beyond end")
                .code,
            "InvalidCursor"
        );
        assert_eq!(
            s.pull("garbage!", 10, None).expect_err("malformed").code,
            "InvalidCursor"
        );
        assert_eq!(
            s.pull(&cursor::encode(b + 2), 10, None)
                .expect("retained")
                .groups
                .len(),
            3
        );
    }

    #[test]
    fn route_key_picks_the_shard_whose_range_contains_it() {
        let mut ls = Logstore::new(4);
        assert_eq!(
            ls.write_shard(Some("00000000000000000000000000000000")),
            Ok(0)
        );
        assert_eq!(
            ls.write_shard(Some("7fffffffffffffffffffffffffffffff")),
            Ok(1)
        );
        assert_eq!(
            ls.write_shard(Some("80000000000000000000000000000000")),
            Ok(2)
        );
        assert_eq!(
            ls.write_shard(Some("ffffffffffffffffffffffffffffffff")),
            Ok(3)
        );
        assert_eq!(
            ls.shards[&1].begin_hex(),
            "40000000000000000000000000000000"
        );
        let lb: Vec<u32> = (0..4).map(|_| ls.write_shard(None).expect("lb")).collect();
        assert_eq!(lb, vec![0, 1, 2, 3]);
    }

    #[test]
    fn group_quota_counts_groups_per_logstore() {
        let mut ls = Logstore::new(1);
        ls.create_group("a", 40, false, 2).expect("first");
        assert_eq!(
            ls.create_group("a", 40, false, 2).expect_err("dup").code,
            "ConsumerGroupAlreadyExist"
        );
        ls.create_group("b", 40, false, 2).expect("second");
        let err = ls.create_group("c", 40, false, 2).expect_err("over quota");
        assert_eq!((err.status, err.code), (400, "ConsumerGroupQuotaExceed"));
        ls.groups.remove("a");
        ls.create_group("c", 40, false, 2)
            .expect("room again after a delete");
        let mut other = Logstore::new(1);
        other
            .create_group("a", 40, false, 2)
            .expect("quota is per logstore");
    }

    #[test]
    fn split_and_merge_make_parents_readonly() {
        let mut ls = Logstore::new(1);
        ls.split(0, "80000000000000000000000000000000")
            .expect("split");
        assert!(ls.shards[&0].readonly);
        assert_eq!(ls.shards[&1].parents, vec![0]);
        assert_eq!(
            ls.shards[&2].begin_hex(),
            "80000000000000000000000000000000"
        );
        assert_eq!(ls.write_shard(Some("10")), Ok(1));
        ls.merge(1).expect("merge");
        assert!(ls.shards[&1].readonly && ls.shards[&2].readonly);
        assert_eq!(ls.shards[&3].parents, vec![1, 2]);
        assert_eq!(ls.merge(3).expect_err("last").code, "ParameterInvalid");
    }
}
