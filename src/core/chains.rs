//! Linked chains: which part of a chain the kernel can run by itself, and what the core
//! must hold back.
//!
//! The kernel runs a chain of linked SQEs in order, but not every op breaks a soft link
//! when it fails: as of Linux 6.18, a failing STATX, RENAMEAT, UNLINKAT, MKDIRAT,
//! SYMLINKAT, LINKAT, FSYNC or FTRUNCATE lets the next request run (they never mark the
//! request failed), and before 5.16 an expired TIMEOUT breaks its chain. Requests whose
//! opcode the kernel lacks run on the emulator thread. So a chain is cut into
//! *segments*: each segment goes to the kernel (or the emulator) whole; the rest of the
//! chain is *held* behind the segment's last request and released when that request
//! completes (or completed with ECANCELED if it failed behind a soft link).

use super::ops::Link;
use super::slab::{Entry, Stage};
use super::state::{Held, Prepared, State};

impl<T> State<T> {
    /// Commits the prepared batch, chain by chain (a chain ends at the first request
    /// without a link flag, or at the end of the batch). Returns how many requests were
    /// committed here; those pushed to the kernel are committed when it takes them.
    pub fn commit_prepared(&mut self) -> usize {
        let batch = std::mem::take(&mut self.prepared);
        self.prepared_sqes = 0;
        self.prepared_hidden = 0;
        let mut committed = 0;
        if batch.iter().all(Prepared::plain) {
            // No links, nothing emulated (the usual batch): straight into the SQ.
            self.push_plain(&batch);
            self.prepared = batch;
            self.prepared.clear();
            return 0;
        }
        let mut chain = Vec::new();
        for p in &batch {
            if chain.is_empty() && p.plain() {
                // Unlinked and in the kernel: no chain to keep track of.
                self.push_plain(std::slice::from_ref(p));
                continue;
            }
            chain.push(*p);
            if p.link == Link::None {
                committed += self.dispatch(std::mem::take(&mut chain), false);
            }
        }
        if let Some(last) = chain.last_mut() {
            last.link = Link::None;
            committed += self.dispatch(chain, false);
        }
        // Hand the (now empty) list back, keeping its allocation.
        self.prepared = batch;
        self.prepared.clear();
        committed
    }

    /// Starts a chain: its first segment goes to the kernel (or the emulator), the rest
    /// is held behind the segment's last request. `counted`: the chain was committed
    /// before (released from hold). Returns how many of the caller's requests it
    /// committed now (group members are the core's).
    pub fn dispatch(&mut self, mut chain: Vec<Prepared>, counted: bool) -> usize {
        let mut committed = 0;
        let mut commit = |st: &mut Self, tag: u64, stage: Stage| {
            if counted {
                if let Some(entry) = st.ops.get_mut(tag) {
                    entry.stage = stage;
                }
            } else {
                st.commit_entry(tag, stage);
                committed += usize::from(!st.ops.get(tag).is_some_and(Entry::hidden));
            }
        };
        // A request cancelled while it waited completes now, as a failure would.
        while chain
            .first()
            .is_some_and(|p| self.ops.get(p.tag).is_some_and(|e| e.cancelled))
        {
            let first = chain.remove(0);
            commit(self, first.tag, Stage::Held);
            if let Some(entry) = self.ops.get_mut(first.tag) {
                entry.result = Some(-libc::ECANCELED);
            }
            self.finish(first.tag);
            self.signal();
            if first.link == Link::Soft {
                for p in &chain {
                    commit(self, p.tag, Stage::Held);
                }
                self.fail_chain(chain);
                return committed;
            }
        }
        if chain.is_empty() {
            return committed;
        }
        let cut = self.boundary(&chain);
        let rest = chain.split_off(cut + 1);
        let (last_tag, last_link) = chain.last().map(|p| (p.tag, p.link)).expect("not empty");
        if chain[0].emulated {
            commit(self, chain[0].tag, Stage::Emulated);
            self.emulate.push_back(chain[0].tag);
        } else if !self.push_segment(&chain, counted) && !self.retry_push(&chain, counted) {
            // The kernel keeps refusing SQEs: fail the segment rather than lose it.
            for p in &chain {
                commit(self, p.tag, Stage::Held);
                if let Some(entry) = self.ops.get_mut(p.tag) {
                    entry.result = Some(-libc::EAGAIN);
                }
            }
            for p in chain {
                self.finish(p.tag);
            }
            self.signal();
        }
        if !rest.is_empty() {
            for p in &rest {
                commit(self, p.tag, Stage::Held);
            }
            self.held.insert(
                last_tag,
                Held {
                    link: last_link,
                    rest,
                },
            );
        }
        committed
    }

    /// Frees the SQ (submitting what the kernel left there) and pushes once more.
    fn retry_push(&mut self, segment: &[Prepared], counted: bool) -> bool {
        let _ = self.submit();
        self.push_segment(segment, counted)
    }

    /// The index of the last request of the chain's first segment.
    fn boundary(&self, chain: &[Prepared]) -> usize {
        let cancelled = |p: &Prepared| self.ops.get(p.tag).is_some_and(|e| e.cancelled);
        for (i, p) in chain.iter().enumerate() {
            let next = chain.get(i + 1);
            if p.emulated
                || p.link == Link::None
                || (p.link == Link::Soft && p.unsafe_link)
                || next.is_some_and(|n| n.emulated || cancelled(n))
            {
                return i;
            }
        }
        chain.len() - 1
    }
}
