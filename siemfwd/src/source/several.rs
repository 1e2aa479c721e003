//! Several consumer groups read as one source: one process forwarding
//! several logstores (each with its own project, endpoint, group, rules and
//! credentials) through one pipeline — one in-flight budget, one sink.
//!
//! The run loop knows shards by a `u32`; here each member's shard ids are
//! packed under the member's index (the top 8 bits), so a member may hold
//! shards numbered below 2^24 — Log Service numbers a logstore's shards from
//! 0 and a split or merge adds one or two, so a logstore would need sixteen
//! million of them. A member whose id does not fit stops the run with an
//! error rather than being folded onto another's.
//!
//! An assignment is every member's last assignment together; waiting for
//! the next one waits for any member's (each member's wait is cancel-safe,
//! and so is this one: a member's answer is only taken when it is returned).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::{Error, GroupSource};

/// Bits of a packed id that hold the member's shard id.
const SHARD_BITS: u32 = 24;

/// Most members one source can have.
pub const MAX_MEMBERS: usize = 1 << (32 - SHARD_BITS);

/// Several sources of one kind, run as one; see the module docs.
#[derive(Debug)]
pub struct Several<S> {
    members: Vec<Member<S>>,
}

#[derive(Debug)]
struct Member<S> {
    /// How the member is named in logs (`project/logstore`).
    label: String,
    source: S,
    /// Its shards as last returned.
    last: Vec<u32>,
}

type Answer<'a> = Pin<Box<dyn Future<Output = (usize, Result<Vec<u32>, Error>)> + Send + 'a>>;

impl<S: GroupSource> Several<S> {
    /// Run `members` (each with its label) as one source.
    ///
    /// # Errors
    /// [`Error::Config`] with more than [`MAX_MEMBERS`] of them.
    pub fn new(members: Vec<(String, S)>) -> Result<Self, Error> {
        if members.len() > MAX_MEMBERS {
            return Err(Error::Config {
                key: "source".to_owned(),
                problem: format!("at most {MAX_MEMBERS} groups in one process"),
            });
        }
        Ok(Self {
            members: members
                .into_iter()
                .map(|(label, source)| Member {
                    label,
                    source,
                    last: Vec::new(),
                })
                .collect(),
        })
    }

    fn member(&self, id: u32) -> Option<(&Member<S>, u32)> {
        let (index, shard) = unpack(id);
        self.members.get(index).map(|m| (m, shard))
    }
}

fn pack(index: usize, shard: u32) -> Option<u32> {
    let index = u32::try_from(index).ok()?;
    (shard < 1 << SHARD_BITS && index < 1 << (32 - SHARD_BITS))
        .then_some(index << SHARD_BITS | shard)
}

fn unpack(id: u32) -> (usize, u32) {
    ((id >> SHARD_BITS) as usize, id & ((1 << SHARD_BITS) - 1))
}

impl<S: GroupSource + Sync> GroupSource for Several<S> {
    type Reader = S::Reader;

    async fn join(&mut self) -> Result<(), Error> {
        for i in 0..self.members.len() {
            if let Err(e) = self.members[i].source.join().await {
                // Those already in their groups leave them, rather than hold
                // shards until the groups time them out.
                for m in &mut self.members[..i] {
                    m.source.leave().await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn assignment(&mut self) -> Result<Vec<u32>, Error> {
        let (index, answer) = {
            let mut waits: Vec<Answer<'_>> = self
                .members
                .iter_mut()
                .enumerate()
                .map(|(i, m)| -> Answer<'_> {
                    Box::pin(async move { (i, m.source.assignment().await) })
                })
                .collect();
            std::future::poll_fn(|cx| {
                for wait in &mut waits {
                    if let Poll::Ready(answer) = wait.as_mut().poll(cx) {
                        return Poll::Ready(answer);
                    }
                }
                Poll::Pending
            })
            .await
        };
        let shards = answer?;
        let member = &mut self.members[index];
        if let Some(big) = shards.iter().find(|s| pack(index, **s).is_none()) {
            return Err(Error::Config {
                key: "source".to_owned(),
                problem: format!(
                    "{}: shard id {big} is over the {} that one of several groups can hold",
                    member.label,
                    (1u32 << SHARD_BITS) - 1
                ),
            });
        }
        member.last = shards;
        Ok(self
            .members
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.last.iter().filter_map(move |s| pack(i, *s)))
            .collect())
    }

    fn set_held(&self, held: &[u32]) {
        for (i, m) in self.members.iter().enumerate() {
            let mine: Vec<u32> = held
                .iter()
                .map(|id| unpack(*id))
                .filter(|(index, _)| *index == i)
                .map(|(_, shard)| shard)
                .collect();
            m.source.set_held(&mine);
        }
    }

    async fn open(&self, id: u32) -> Result<Self::Reader, Error> {
        let (member, shard) = self.member(id).ok_or_else(|| Error::Config {
            key: "source".to_owned(),
            problem: format!("no group holds shard {id}"),
        })?;
        member.source.open(shard).await
    }

    fn ended(&mut self, id: u32) -> bool {
        let (index, shard) = unpack(id);
        self.members
            .get_mut(index)
            .is_some_and(|m| m.source.ended(shard))
    }

    fn finite(&self) -> bool {
        self.members.iter().all(|m| m.source.finite())
    }

    fn shard_name(&self, id: u32) -> String {
        match self.member(id) {
            Some((m, shard)) => format!("{} {shard}", m.label),
            None => id.to_string(),
        }
    }

    async fn leave(&mut self) {
        for m in &mut self.members {
            m.source.leave().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pack_under_their_member_and_unpack_back() {
        for (i, s) in [(0, 0), (0, 7), (1, 0), (2, 3), (255, (1 << 24) - 1)] {
            let id = pack(i, s).expect("fits");
            assert_eq!(unpack(id), (i, s));
        }
        assert_eq!(pack(0, 5), Some(5), "the first member's ids are its own");
        assert_eq!(pack(0, 1 << 24), None);
        assert_eq!(pack(256, 0), None);
    }
}
