//! The op table: every prepared or in-flight request owns a slot until its completion is
//! harvested. A slot is named by a *tag*, the SQE's `user_data`: the slot index plus a
//! generation, so a stale tag (a cancel racing a completion, a reused slot) never reaches
//! another request.

use std::os::fd::RawFd;

use io_uring::types;

use super::ops::{Op, Target};

/// Set in the `user_data` of a deadline's linked-timeout SQE: the CQE belongs to the
/// request whose tag is the rest.
pub const TIMER_BIT: u64 = 1 << 62;
/// `user_data` of internal requests whose completions are ignored (cancels).
pub const INTERNAL: u64 = u64::MAX;
/// Generations use 30 bits, above the 32-bit index and below [`TIMER_BIT`].
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// A request in the table.
#[derive(Debug)]
pub struct Entry<T> {
    pub op: Op,
    /// The registered fd of a data op; it counts as in use until the completion is taken.
    pub file: Option<RawFd>,
    /// Where a data op's SQE points (its registered file).
    pub target: Target,
    pub payload: T,
    /// The timer of the request's deadline, read by the kernel until its CQE arrives.
    pub deadline: Option<Box<types::Timespec>>,
    /// Completions still expected from the kernel: the request's, and its timer's.
    pub waiting: u8,
    /// The request's own result, once its CQE arrived.
    pub result: Option<i32>,
    /// The deadline's timer expired (its CQE said ETIME).
    pub timer_fired: bool,
    /// Where the request is.
    pub stage: Stage,
    /// Cancelled before it started (held or waiting for the emulator): it completes
    /// with ECANCELED when its turn comes.
    pub cancelled: bool,
    /// Its part in a group (see [`Role`]); `None` for a request of its own.
    pub group: Option<Box<Role>>,
}

/// A request's part in a group: several requests (a chain) that the caller sees as one.
/// The last request of the chain is the *leader*: its completion is the group's; the
/// others are *members*, whose completions the core consumes, reporting into the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member {
        leader: u64,
        /// Its result is the group's value (e.g. the bytes a read transferred).
        value: bool,
        /// An EOF probe: a positive result marks the group's `more` (the file goes on).
        probe: bool,
    },
    Leader {
        value: Option<i32>,
        /// A probe member found more data (see [`Done::more`](super::state::Done::more)).
        more: bool,
        /// The first error of a member (ECANCELED, the echo of a broken chain, aside).
        error: Option<i32>,
        /// The direct descriptor slot the group used, free again once it completed.
        slot: Option<u32>,
    },
}

/// Where a request is, once in the op table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Prepared, not committed.
    Prepared,
    /// Committed, in the SQ or the kernel.
    Kernel,
    /// Committed, waiting behind a request of its chain.
    Held,
    /// Committed, waiting for (or run by) the emulator.
    Emulated,
}

impl<T> Entry<T> {
    /// True for a group member: its completion is the core's business.
    pub fn hidden(&self) -> bool {
        matches!(self.group.as_deref(), Some(Role::Member { .. }))
    }

    /// CQEs a request yields: one, plus one for the timer of a deadline.
    pub fn cqes(&self) -> u8 {
        1 + u8::from(self.deadline.is_some())
    }

    /// The result the caller sees once every CQE is in: a request cancelled because
    /// its deadline passed completes with ETIMEDOUT.
    pub fn final_result(&self) -> i32 {
        let result = self.op.settle(self.result.unwrap_or(-libc::ECANCELED));
        let result = if self.timer_fired && (result == -libc::ECANCELED || result == -libc::EINTR) {
            -libc::ETIMEDOUT
        } else {
            result
        };
        match self.group.as_deref() {
            // A group reports its first real error, else its value.
            Some(Role::Leader { value, error, .. }) => match error {
                Some(error) => *error,
                None if result < 0 && result != -libc::ECANCELED => result,
                None => value.unwrap_or(result),
            },
            _ => result,
        }
    }
}

/// A slab of entries with a free list.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<(u64, Entry<T>)>>,
    free: Vec<u32>,
    generation: u32,
}

impl<T> Slab<T> {
    pub fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            generation: 0,
        }
    }

    /// Stores `entry`; returns its tag.
    pub fn insert(&mut self, entry: Entry<T>) -> u64 {
        self.generation = self.generation.wrapping_add(1) & GENERATION_MASK;
        if self.generation == 0 {
            self.generation = 1;
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let tag = (u64::from(self.generation) << 32) | u64::from(index);
        self.slots[index as usize] = Some((tag, entry));
        tag
    }

    fn slot(&self, tag: u64) -> Option<&Option<(u64, Entry<T>)>> {
        self.slots.get((tag & 0xffff_ffff) as usize)
    }

    pub fn get(&self, tag: u64) -> Option<&Entry<T>> {
        match self.slot(tag)? {
            Some((t, entry)) if *t == tag => Some(entry),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, tag: u64) -> Option<&mut Entry<T>> {
        match self.slots.get_mut((tag & 0xffff_ffff) as usize)? {
            Some((t, entry)) if *t == tag => Some(entry),
            _ => None,
        }
    }

    /// Takes the entry out; `None` for an unknown or stale tag.
    pub fn remove(&mut self, tag: u64) -> Option<Entry<T>> {
        let index = (tag & 0xffff_ffff) as usize;
        let slot = self.slots.get_mut(index)?;
        match slot {
            Some((t, _)) if *t == tag => {}
            _ => return None,
        }
        let (_, entry) = slot.take()?;
        self.free.push(index as u32);
        Some(entry)
    }

    /// Visits every entry with its tag.
    pub fn for_each(&self, mut f: impl FnMut(u64, &Entry<T>)) {
        for (tag, entry) in self.slots.iter().flatten() {
            f(*tag, entry);
        }
    }

    /// Removes and yields every entry.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry<T>> + '_ {
        self.free.clear();
        self.slots.drain(..).flatten().map(|(_, entry)| entry)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry<u32> {
        Entry {
            op: Op::Fsync { datasync: false },
            file: None,
            target: Target::Fd(-1),
            payload: n,
            deadline: None,
            waiting: 1,
            result: None,
            timer_fired: false,
            stage: Stage::Prepared,
            cancelled: false,
            group: None,
        }
    }

    #[test]
    fn reused_slots_get_new_tags() {
        let mut slab = Slab::new();
        let a = slab.insert(entry(1));
        let b = slab.insert(entry(2));
        assert_ne!(a, b);
        assert_eq!(slab.remove(a).unwrap().payload, 1);
        assert!(slab.remove(a).is_none(), "a tag is removed once");
        let c = slab.insert(entry(3));
        assert_eq!(c & 0xffff_ffff, a & 0xffff_ffff, "the slot is reused");
        assert_ne!(c, a, "under a new tag");
        assert!(slab.get(a).is_none(), "the stale tag reaches nothing");
        assert_eq!(slab.get(c).unwrap().payload, 3);
        assert_eq!(slab.len(), 2);
        let mut rest: Vec<u32> = slab.drain().map(|e| e.payload).collect();
        rest.sort();
        assert_eq!(rest, vec![2, 3]);
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn tags_never_collide_with_the_markers() {
        let mut slab = Slab::new();
        for _ in 0..1000 {
            let tag = slab.insert(entry(0));
            assert_eq!(tag & TIMER_BIT, 0);
            assert_ne!(tag, INTERNAL);
            slab.remove(tag);
        }
    }

    #[test]
    fn a_deadline_turns_a_cancel_into_etimedout() {
        let mut e = entry(0);
        e.result = Some(-libc::ECANCELED);
        assert_eq!(e.final_result(), -libc::ECANCELED);
        e.timer_fired = true;
        assert_eq!(e.final_result(), -libc::ETIMEDOUT);
        e.result = Some(5);
        assert_eq!(
            e.final_result(),
            5,
            "a request that finished first keeps its result"
        );
    }
}
