//! Field names `parse_json` made for earlier records, kept for the next.
//!
//! A log's JSON comes in few shapes: ActionTrail writes the same members in
//! the same order event after event, save an `errorCode` here and an
//! `additionalEventData` there. Making a member's name is the dearest part
//! of flattening it (find the key's closing quote, join the key to its
//! parents' names, copy the name into the record's arena), and it makes the
//! same names record after record. So each shard's chain remembers, for each
//! `parse_json` step, the members it met as a graph — which keys came first
//! in an object, which came after which — with the name made for each. At a
//! member, the flattener compares the text with the key or two that came at
//! that place before; when one matches up to its closing quote, the name is
//! the one made then, and the key is not read again.
//!
//! What a record teaches is written aside while the record is in hand (its
//! fields borrow the names remembered, which therefore cannot change under
//! them) and taken in before the next ([`Names::take_in`]). Only plain keys
//! are remembered (a key with an escape is made every time). A place keeps
//! the [`WAYS`] keys learnt there last (a fourth pushes out the oldest, and
//! what was remembered under it is no longer reached), and what one step
//! remembers in one chain is bounded: past [`MAX_ENTRIES`] members or
//! [`MAX_BYTES`] bytes of keys and names, all is forgotten and learnt
//! again — at most ~200 KiB per `parse_json` step and shard, a few KiB for
//! ActionTrail. A key not met before costs about what it did without this
//! (its parent's name is copied again, where the flattener without memory
//! kept it in place), and a copy of it and its name set aside to be learnt.
//!
//! A log whose keys are data (an object keyed by IDs, never the same twice)
//! would teach new keys at the same place record after record, and all
//! that follows them in their object, and fill the memory until all is
//! forgotten, the shape around them too. So:
//! - a key new at a place that has seen another is learnt alone: what
//!   follows it and what is under it are learnt the next time it comes, so
//!   keys that never come again teach one entry per record;
//! - a record teaches at most [`MAX_LESSONS`] members and a quarter of
//!   [`MAX_BYTES`] (the rest is made, and learnt in later records);
//! - a place that has pushed out [`RESTLESS`] keys learns nothing more: a
//!   key there that is not one of those it keeps is made, with what follows
//!   it and what is under it, as if nothing were remembered, while the rest
//!   of the log is still recalled. Every [`CALM`] records the counts are
//!   halved everywhere, so such a place learns a few keys again (a place
//!   that went restless in a burst gets its chance to learn the shape that
//!   came after it; one whose keys are data adds a few entries that are
//!   never met again, until the memory is full and forgotten).

use std::cell::RefCell;
use std::ops::Range;

/// Keys remembered at one place (after one member, or first in one object):
/// enough for the optional members of a shape, not for a log whose keys are
/// data.
pub(crate) const WAYS: usize = 3;

/// Members remembered per step, at most (ActionTrail has ~50, and ~5 more
/// for each kind of event's `requestParameters`).
pub(crate) const MAX_ENTRIES: usize = 1024;

/// Bytes of keys and names remembered per step, at most.
pub(crate) const MAX_BYTES: usize = 64 << 10;

/// Members one record may teach one step, at most: a record of more new
/// members than the memory holds would otherwise make it forget all at
/// every record.
pub(crate) const MAX_LESSONS: usize = MAX_ENTRIES / 4;

/// Keys a place may push out before it is taken for one whose keys are
/// data and learns nothing more (until [`CALM`] halves its count). A shape
/// whose optional members vary, as `requestParameters` does with the API
/// called, gets there too, after its first few records: the ways keep the
/// keys learnt last, and the keys after them are still recalled.
pub(crate) const RESTLESS: u8 = 8;

/// Records after which every place's count of keys pushed out is halved:
/// a restless place learns `RESTLESS / 2` more keys per this many records
/// (one every record until it is restless again), whatever it meets.
pub(crate) const CALM: u32 = 4096;

/// No entry in a slot of [`Entry::first`] or [`Entry::after`].
const EMPTY: u32 = u32::MAX;

/// Where a member stands, to find the keys seen there before: first in the
/// object that is entry `n`'s value (`n` = 0: the document's object), or
/// right after entry `n`. An id at or past the entries remembered is one this
/// record taught (a lesson); nothing is remembered after it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    First(u32),
    After(u32),
    /// After a member that was not remembered and not learnt (its key had
    /// an escape, there was no room, its place is restless, or it follows
    /// a key learnt alone): nothing to compare with, nothing to teach.
    Unknown,
}

impl Place {
    /// The top level of a document.
    pub(crate) const TOP: Place = Place::First(0);

    /// The entry the place hangs from, and which of its ways it is (0:
    /// `first`, 1: `after`).
    fn at(self) -> Option<(u32, usize)> {
        match self {
            Place::First(n) => Some((n, 0)),
            Place::After(n) => Some((n, 1)),
            Place::Unknown => None,
        }
    }
}

/// One member met before.
#[derive(Debug)]
struct Entry {
    /// The key as written between its quotes.
    key: Range<u32>,
    /// The name made for it, followed by the separator (what the names of
    /// its object's members start with).
    name: Range<u32>,
    /// The members met first in its object, if its value is one.
    first: [u32; WAYS],
    /// The members met right after it.
    after: [u32; WAYS],
    /// Keys pushed out of `first` and of `after` ([`RESTLESS`]).
    pushed_out: [u8; 2],
}

impl Entry {
    const ROOT: Entry = Entry::new(0..0, 0..0);

    fn ways(&self, way: usize) -> &[u32; WAYS] {
        if way == 0 {
            &self.first
        } else {
            &self.after
        }
    }

    /// [`Entry::ways`] to change, with its count of keys pushed out.
    fn ways_mut(&mut self, way: usize) -> (&mut [u32; WAYS], &mut u8) {
        let ways = if way == 0 {
            &mut self.first
        } else {
            &mut self.after
        };
        (ways, &mut self.pushed_out[way])
    }

    const fn new(key: Range<u32>, name: Range<u32>) -> Self {
        Entry {
            key,
            name,
            first: [EMPTY; WAYS],
            after: [EMPTY; WAYS],
            pushed_out: [0; 2],
        }
    }
}

/// What one step remembers.
#[derive(Debug)]
struct Shape {
    bytes: Vec<u8>,
    /// `[0]` is the document's object.
    entries: Vec<Entry>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            entries: vec![Entry::ROOT],
        }
    }
}

impl Shape {
    /// Forget all, keeping the memory (bounded) for what is learnt next.
    fn forget(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.entries.push(Entry::ROOT);
    }
}

/// A member the record in hand met that was not remembered.
#[derive(Debug)]
struct Lesson {
    place: Place,
    key: Range<usize>,
    name: Range<usize>,
    /// It is new at a place that has seen another key: nothing after it or
    /// under it is learnt in the same record.
    alone: bool,
}

/// What the record in hand taught one step.
#[derive(Debug, Default)]
struct Lessons {
    bytes: Vec<u8>,
    list: Vec<Lesson>,
    /// It taught more than there is room for.
    overflowed: bool,
}

/// The names remembered by every `parse_json` step of one chain, by the
/// step's slot (its place in `[[transforms]]`).
#[derive(Debug, Default)]
pub(crate) struct Names {
    shapes: Vec<Shape>,
    lessons: RefCell<Vec<Lessons>>,
    /// [`take_in`]'s map from lessons to entries, kept for its memory.
    became: Vec<u32>,
    /// Records since the counts of keys pushed out were last halved.
    records: u32,
}

impl Names {
    /// The member whose key starts at `text[at]` (its opening quote),
    /// standing at `place`, if it was met there before: its name (with the
    /// separator), the length of its key and its id. A match is exact: the
    /// bytes of a plain key, then its closing quote.
    #[inline]
    pub(crate) fn recall(
        &self,
        slot: usize,
        place: Place,
        text: &[u8],
        at: usize,
    ) -> Option<(&[u8], usize, u32)> {
        let shape = self.shapes.get(slot)?;
        let ways = match place {
            Place::First(n) => &shape.entries.get(n as usize)?.first,
            Place::After(n) => &shape.entries.get(n as usize)?.after,
            Place::Unknown => return None,
        };
        let rest = text.get(at + 1..)?;
        for &id in ways {
            // Ways fill from the first: an empty one ends them.
            let entry = shape.entries.get(id as usize)?;
            let key = &shape.bytes[entry.key.start as usize..entry.key.end as usize];
            if rest.get(key.len()) == Some(&b'"') && same(&rest[..key.len()], key) {
                let name = &shape.bytes[entry.name.start as usize..entry.name.end as usize];
                return Some((name, key.len(), id));
            }
        }
        None
    }

    /// Note that the member `key` at `place` got `name` (with its
    /// separator); its id, or none if it is not to be learnt (no room, a
    /// restless place, a place after or under a key learnt alone).
    pub(crate) fn learn(&self, slot: usize, place: Place, key: &[u8], name: &[u8]) -> Option<u32> {
        let (n, way) = place.at()?;
        let shape = self.shapes.get(slot);
        let (known, known_bytes) = shape.map_or((1, 0), |s| (s.entries.len(), s.bytes.len()));
        let mut all = self.lessons.borrow_mut();
        if all.len() <= slot {
            all.resize_with(slot + 1, Lessons::default);
        }
        let lessons = &mut all[slot];
        let alone = match shape.and_then(|s| s.entries.get(n as usize)) {
            Some(entry) => {
                if entry.pushed_out[way] >= RESTLESS {
                    return None;
                }
                entry.ways(way)[0] != EMPTY
            }
            // The document's object, in a step that has learnt nothing yet.
            None if (n as usize) < known => false,
            // A place this record made: after or under one of its lessons.
            None => match lessons.list.get(n as usize - known) {
                Some(lesson) if !lesson.alone => false,
                _ => return None,
            },
        };
        if lessons.list.len() >= MAX_LESSONS
            || lessons.bytes.len() + key.len() + name.len() > MAX_BYTES / 4
        {
            return None;
        }
        if known + lessons.list.len() >= MAX_ENTRIES
            || known_bytes + lessons.bytes.len() + key.len() + name.len() > MAX_BYTES
        {
            lessons.overflowed = true;
            return None;
        }
        let id = (known + lessons.list.len()) as u32;
        let at = lessons.bytes.len();
        lessons.bytes.extend_from_slice(key);
        lessons.bytes.extend_from_slice(name);
        lessons.list.push(Lesson {
            place,
            key: at..at + key.len(),
            name: at + key.len()..at + key.len() + name.len(),
            alone,
        });
        Some(id)
    }

    /// Take in what the last record taught (between records: nothing
    /// borrows the names then).
    pub(crate) fn take_in(&mut self) {
        self.records += 1;
        if self.records >= CALM {
            self.records = 0;
            for entry in self.shapes.iter_mut().flat_map(|s| s.entries.iter_mut()) {
                entry.pushed_out = entry.pushed_out.map(|n| n / 2);
            }
        }
        let all = self.lessons.get_mut();
        for (slot, lessons) in all.iter_mut().enumerate() {
            if lessons.list.is_empty() && !lessons.overflowed {
                continue;
            }
            if self.shapes.len() <= slot {
                self.shapes.resize_with(slot + 1, Shape::default);
            }
            let shape = &mut self.shapes[slot];
            if lessons.overflowed {
                // No room for what the log is like now: forget what it was
                // like, and learn again from the next record.
                shape.forget();
            } else {
                take_in(shape, lessons, &mut self.became);
            }
            lessons.list.clear();
            lessons.bytes.clear();
            lessons.overflowed = false;
        }
    }
}

/// `a == b`, for slices of the same length. Most keys are 4 to 16 bytes:
/// two overlapping loads of a word each compare them without a call to
/// `memcmp`, which cost a sixth of recalling a name.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    let n = a.len();
    match n {
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        _ => a == b,
    }
}

/// The lessons become entries, in order, each the newest way of its place
/// (the oldest way, if the place had no room, is pushed out). A lesson
/// names its place by the id of an entry or of an earlier lesson (the ids
/// after the entries remembered, one per lesson); `became` turns the
/// second kind into the entry the lesson became.
fn take_in(shape: &mut Shape, lessons: &Lessons, became: &mut Vec<u32>) {
    let first_lesson = shape.entries.len() as u32;
    // Lesson index -> the entry it became.
    became.clear();
    for lesson in &lessons.list {
        let resolve = |n: u32| {
            if n < first_lesson {
                Some(n)
            } else {
                became.get((n - first_lesson) as usize).copied()
            }
        };
        let id = shape.entries.len() as u32;
        // (`learn` teaches nothing at `Place::Unknown`.)
        let parent = lesson
            .place
            .at()
            .and_then(|(n, way)| Some((resolve(n)?, way)));
        let Some((e, way)) =
            parent.and_then(|(p, way)| Some((shape.entries.get_mut(p as usize)?, way)))
        else {
            // Not reached: `learn` refuses a place that is neither an entry
            // nor a lesson before this one. Were it reached, an entry that
            // no place leads to keeps the ids `learn` gave the lessons
            // after it equal to the entries they become.
            debug_assert!(false, "a lesson at {:?} with no parent", lesson.place);
            shape.entries.push(Entry::new(0..0, 0..0));
            became.push(id);
            continue;
        };
        let (ways, pushed_out) = e.ways_mut(way);
        if ways[WAYS - 1] != EMPTY {
            *pushed_out = pushed_out.saturating_add(1);
        }
        ways.rotate_right(1);
        ways[0] = id;
        let mut keep = |r: &Range<usize>| {
            let start = shape.bytes.len() as u32;
            shape.bytes.extend_from_slice(&lessons.bytes[r.clone()]);
            start..shape.bytes.len() as u32
        };
        let key = keep(&lesson.key);
        let name = keep(&lesson.name);
        shape.entries.push(Entry::new(key, name));
        became.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recall at `place` the key written at the start of `text`, or learn it.
    fn meet(names: &Names, place: Place, text: &str, key: &str, name: &str) -> (bool, Place) {
        match names.recall(0, place, text.as_bytes(), 0) {
            Some((got, len, id)) => {
                assert_eq!(got, name.as_bytes());
                assert_eq!(len, key.len());
                (true, Place::After(id))
            }
            None => {
                let id = names.learn(0, place, key.as_bytes(), name.as_bytes());
                (false, id.map_or(Place::Unknown, Place::After))
            }
        }
    }

    #[test]
    fn a_shape_met_twice_is_recalled_the_second_time_with_its_optional_members() {
        let mut names = Names::default();
        let record = |names: &Names, keys: &[&str]| {
            let mut place = Place::TOP;
            let mut hits = 0;
            for k in keys {
                let (hit, next) = meet(names, place, &format!("\"{k}\":1"), k, &format!("e.{k}."));
                hits += usize::from(hit);
                place = next;
            }
            hits
        };
        assert_eq!(record(&names, &["a", "b", "c"]), 0);
        names.take_in();
        assert_eq!(record(&names, &["a", "b", "c"]), 3);
        assert_eq!(
            record(&names, &["a", "x", "c"]),
            1,
            "x is new, and c after it"
        );
        names.take_in();
        // x was new where b had been: learnt alone, and c after it now.
        assert_eq!(record(&names, &["a", "x", "c"]), 2);
        names.take_in();
        assert_eq!(record(&names, &["a", "x", "c"]), 3);
        assert_eq!(record(&names, &["a", "b", "c"]), 3, "both ways after a");
    }

    #[test]
    fn same_is_equality() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same(&a, &a));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x80;
                assert!(!same(&a, &b), "{n} {i}");
            }
        }
    }

    #[test]
    fn a_key_is_recalled_only_up_to_its_closing_quote() {
        let mut names = Names::default();
        let (_, _) = meet(&names, Place::TOP, "\"ab\"", "ab", "e.ab.");
        names.take_in();
        assert!(names.recall(0, Place::TOP, b"\"ab\"", 0).is_some());
        for other in ["\"abc\"", "\"a\"", "\"ab\\u0041\"", "\"ab", "\"a"] {
            assert!(
                names.recall(0, Place::TOP, other.as_bytes(), 0).is_none(),
                "{other}"
            );
        }
        assert!(
            names.recall(1, Place::TOP, b"\"ab\"", 0).is_none(),
            "another step"
        );
    }

    #[test]
    fn a_place_keeps_the_keys_learnt_there_last() {
        let mut names = Names::default();
        let recalled = |names: &Names, k: usize| {
            let text = format!("\"k{k}\"");
            let Some((_, _, id)) = names.recall(0, Place::TOP, text.as_bytes(), 0) else {
                return false;
            };
            // What came after it is remembered with it.
            names.recall(0, Place::After(id), b"\"next\"", 0).is_some()
        };
        // Each key in two records: new at a place that has seen another
        // key, it is learnt alone the first time, what follows it the next.
        for k in 0..WAYS + 1 {
            let key = format!("k{k}");
            for record in 0..2 {
                let after = meet(&names, Place::TOP, &format!("\"{key}\""), &key, "n").1;
                let next = meet(&names, after, "\"next\"", "next", "m").1;
                let alone = k > 0 && record == 0;
                assert_eq!(next == Place::Unknown, alone, "k{k}, record {record}");
                names.take_in();
            }
        }
        assert!(!recalled(&names, 0), "the oldest way was pushed out");
        assert!((1..=WAYS).all(|k| recalled(&names, k)));
        // Met again, it is learnt again, alone, and pushes out the next
        // oldest.
        let after = meet(&names, Place::TOP, "\"k0\"", "k0", "n").1;
        assert_eq!(
            meet(&names, after, "\"next\"", "next", "m").1,
            Place::Unknown
        );
        names.take_in();
        assert!(!recalled(&names, 0), "what came after it is not learnt yet");
        assert!(names.recall(0, Place::TOP, b"\"k0\"", 0).is_some());
        assert!(names.recall(0, Place::TOP, b"\"k1\"", 0).is_none());
    }

    #[test]
    fn a_place_whose_keys_are_data_stops_learning_and_the_rest_is_still_recalled() {
        let mut names = Names::default();
        let id = |p: Place| match p {
            Place::After(id) => id,
            other => panic!("{other:?}"),
        };
        // `{"m": {"<a new key>": 1}, "z": 1}`, record after record: more
        // records than would fill the memory if every key were learnt.
        let mut hits = Vec::new();
        for r in 0..MAX_ENTRIES + 100 {
            let (m_hit, after_m) = meet(&names, Place::TOP, "\"m\"", "m", "m.");
            let m = id(after_m);
            let key = format!("k{r}");
            let (key_hit, _) = meet(&names, Place::First(m), &format!("\"{key}\""), &key, &key);
            let (z_hit, _) = meet(&names, after_m, "\"z\"", "z", "z");
            assert!(!key_hit, "{r}");
            hits.push(m_hit && z_hit);
            names.take_in();
        }
        assert!(
            !hits[0] && hits[1..].iter().all(|&h| h),
            "m and z recalled throughout"
        );
        // The place pushed out RESTLESS keys and was left alone after that.
        let entries = names.shapes[0].entries.len();
        assert_eq!(entries, 3 + WAYS + usize::from(RESTLESS), "{entries}");
        let m = id(meet(&names, Place::TOP, "\"m\"", "m", "m.").1);
        assert_eq!(names.learn(0, Place::First(m), b"new", b"new"), None);
        assert!(
            names.learn(0, Place::After(m), b"y", b"y").is_some(),
            "other places learn"
        );
        names.take_in();

        // Every CALM records the count is halved: it learns RESTLESS / 2
        // keys again, one a record, and is restless again.
        let m = id(meet(&names, Place::TOP, "\"m\"", "m", "m.").1);
        while names.records != CALM - 1 {
            names.take_in();
        }
        assert_eq!(names.learn(0, Place::First(m), b"new", b"new"), None);
        names.take_in();
        for i in 0..RESTLESS / 2 {
            let key = format!("again{i}");
            let got = names.learn(0, Place::First(m), key.as_bytes(), key.as_bytes());
            assert!(got.is_some(), "{i}");
            names.take_in();
        }
        assert_eq!(names.learn(0, Place::First(m), b"more", b"more"), None);
    }

    #[test]
    fn many_new_keys_in_one_object_do_not_make_it_forget_the_rest() {
        // `{"m": {<keys never seen before>}, "z": 1}`: the first record
        // teaches what a record may, later ones one key each (new where
        // others were, it is learnt alone), never enough to fill the memory.
        for (count, width) in [(120, 32), (400, 36), (2000, 8)] {
            let mut names = Names::default();
            let mut most = 0;
            for r in 0..60 {
                let (m_hit, after_m) = meet(&names, Place::TOP, "\"m\"", "m", "m.");
                let Place::After(m) = after_m else {
                    panic!("{after_m:?}")
                };
                let mut place = Place::First(m);
                for k in 0..count {
                    let key = format!("{:0width$x}", r * 10_000 + k);
                    let text = format!("\"{key}\"");
                    place = meet(&names, place, &text, &key, &format!("m.{key}.")).1;
                }
                let (z_hit, _) = meet(&names, after_m, "\"z\"", "z", "z");
                // (z may come after what the first record may teach.)
                assert!(m_hit && z_hit || r < 2, "{count} keys, record {r}");
                names.take_in();
                let entries = names.shapes[0].entries.len();
                assert!(entries >= most, "{count} keys: forgotten at record {r}");
                most = entries;
            }
            assert!(most <= MAX_LESSONS + 3 + 60, "{count} keys: {most}");
        }
    }

    #[test]
    fn memory_is_bounded_by_forgetting() {
        let mut names = Names::default();
        // One long object whose keys never repeat, read 100 members per
        // record (the next record goes on where the last stopped).
        let mut place = Place::TOP;
        let (mut most, mut forgotten) = (0, 0);
        for k in 0..3 * MAX_ENTRIES {
            let key = format!("k{k}");
            place = meet(&names, place, &format!("\"{key}\""), &key, &key).1;
            if k % 100 == 99 {
                let before = names.shapes.first().map_or(0, |s| s.entries.len());
                names.take_in();
                let after = names.shapes[0].entries.len();
                most = most.max(after);
                if after < before {
                    forgotten += 1;
                    place = Place::TOP;
                }
            }
        }
        assert!(most <= MAX_ENTRIES && most > MAX_ENTRIES - 100, "{most}");
        assert!(forgotten >= 2, "{forgotten}");
        assert!(names.shapes[0].bytes.len() <= MAX_BYTES);

        // More than a record may teach: refused, and nothing forgotten.
        let long = vec![b'x'; MAX_BYTES / 4];
        assert_eq!(names.learn(1, Place::TOP, &long, b"n"), None);
        names.take_in();
        assert!(names.shapes.get(1).is_none_or(|s| s.entries.len() == 1));
    }
}
