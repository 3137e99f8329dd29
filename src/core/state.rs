//! The queue's books, guarded by its lock: the ring, the op table, the registered files,
//! and where every request is.
//!
//! A request moves forward only: *prepared* (its SQEs built, kept here until `commit`),
//! then *committed*: in the kernel (pushed into the SQ, perhaps not yet taken), *held*
//! (waiting behind a request of its chain that the core must see complete first, see
//! [`chains`](super::chains)) or with the *emulator* (its opcode is missing, see
//! [`emulate`](super::emulate)); then *ready* (every completion in, not yet returned to
//! the caller). Keeping prepared requests out of the SQ until `commit` lets internal
//! requests (cancels) and held chains go to the kernel without submitting anything the
//! caller has not committed.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::error::Error;
use super::files::FileTable;
use super::ops::{link_timeout_sqe, Link, Op};
use super::ring::Ring;
use super::slab::{Entry, Role, Slab, Stage, INTERNAL, TIMER_BIT};

/// What a completed request carries besides its result.
#[derive(Debug, Default)]
pub enum Extra {
    #[default]
    None,
    /// The descriptor an `OpenAt` opened, owned until handed to the caller (closed if
    /// the completion is dropped instead).
    Fd(OwnedFd),
    /// The buffer a `Statx` filled.
    Stat(Box<libc::statx>),
}

/// A completed request: the caller's payload, the kernel's result (bytes, a new fd, or
/// -errno) and what else the op produced.
#[derive(Debug)]
pub struct Done<T> {
    pub payload: T,
    pub result: i32,
    pub extra: Extra,
    /// A group's EOF probe found more data after its value's read: the file is longer
    /// than what that read returned (a /proc file returns a page per read).
    pub more: bool,
    /// The registered fd it used; it counts as in use until the completion is returned.
    pub(super) file: Option<RawFd>,
}

impl<T> Done<T> {
    fn from_entry(entry: Entry<T>) -> Done<T> {
        let result = entry.final_result();
        let extra = match entry.op {
            // SAFETY: the kernel (or the emulator) opened this descriptor for us and
            // nobody else knows it.
            Op::OpenAt { slot: None, .. } if result >= 0 => {
                Extra::Fd(unsafe { OwnedFd::from_raw_fd(result) })
            }
            Op::Statx { buf, .. } if result == 0 => Extra::Stat(buf),
            _ => Extra::None,
        };
        let more = matches!(
            entry.group.as_deref(),
            Some(Role::Leader { more: true, .. })
        );
        Done {
            payload: entry.payload,
            result,
            extra,
            more,
            file: entry.file,
        }
    }
}

/// A prepared request, as the commit sees it: its tag, how it joins the next request,
/// and what decides where it runs. Its SQEs are built from the op-table entry when it
/// is pushed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prepared {
    pub tag: u64,
    pub link: Link,
    /// SQEs it takes: one, or two with a deadline (a linked timeout).
    pub sqes: u8,
    /// A failure of this op does not break a kernel chain: the core breaks it.
    pub unsafe_link: bool,
    /// The kernel lacks the opcode: the emulator runs it.
    pub emulated: bool,
}

impl Prepared {
    pub fn sqes(&self) -> usize {
        usize::from(self.sqes)
    }

    /// Runs as a chain of one: the fast path of a commit.
    pub fn plain(&self) -> bool {
        self.link == Link::None && !self.emulated
    }
}

/// SQEs pushed into the ring and not yet taken: a request's (or an internal cancel's).
struct Pushed {
    tag: u64,
    sqes: usize,
    /// Already counted as committed (a held chain released later); else it becomes
    /// committed when the kernel takes its first SQE.
    counted: bool,
}

/// The rest of a chain, waiting for the request it is held behind.
pub(super) struct Held {
    pub link: Link,
    pub rest: Vec<Prepared>,
}

pub(super) struct State<T> {
    /// An expired timer counts as a success in a chain (IORING_TIMEOUT_ETIME_SUCCESS,
    /// 5.16+).
    timer_success: bool,
    /// `None` once closed.
    pub ring: Option<Ring>,
    pub ops: Slab<T>,
    pub files: FileTable,
    pub prepared: Vec<Prepared>,
    pub prepared_sqes: usize,
    /// Of the prepared, the group members (not counted as the caller's requests).
    pub prepared_hidden: usize,
    pushed: VecDeque<Pushed>,
    /// SQEs in the ring the kernel has not taken.
    ring_sqes: usize,
    /// Chains whose rest waits for a request (keyed by its tag).
    pub held: HashMap<u64, Held>,
    /// Requests waiting for the emulator, in order, and the one it is running.
    pub emulate: VecDeque<u64>,
    pub emulating: Option<u64>,
    /// The emulator thread was started (it ends when `shutdown` is set).
    pub emulator: bool,
    pub shutdown: bool,
    /// Requests pushed by a commit that the kernel has not taken yet, their CQEs, and
    /// how many of them are group members.
    uncounted: usize,
    uncounted_cqes: usize,
    uncounted_hidden: usize,
    /// Scratch list of the requests a harvest completed (kept to reuse its allocation).
    finished: Vec<u64>,
    /// Committed requests not yet ready.
    pub running: usize,
    /// Of those, the group members (their completions never reach the caller).
    hidden_running: usize,
    /// Of those, the ones the kernel holds.
    pub in_kernel: usize,
    /// Completions the running requests will still post (CQ room they hold).
    pending_cqes: usize,
    pub ready: VecDeque<Done<T>>,
}

impl<T> State<T> {
    pub fn new(ring: Ring, files: FileTable, timer_success: bool) -> Self {
        State {
            timer_success,
            ring: Some(ring),
            ops: Slab::new(),
            files,
            prepared: Vec::new(),
            prepared_sqes: 0,
            prepared_hidden: 0,
            pushed: VecDeque::new(),
            ring_sqes: 0,
            held: HashMap::new(),
            emulate: VecDeque::new(),
            emulating: None,
            emulator: false,
            shutdown: false,
            uncounted: 0,
            uncounted_cqes: 0,
            uncounted_hidden: 0,
            finished: Vec::new(),
            running: 0,
            hidden_running: 0,
            in_kernel: 0,
            pending_cqes: 0,
            ready: VecDeque::new(),
        }
    }

    pub fn ring(&mut self) -> Result<&mut Ring, Error> {
        self.ring.as_mut().ok_or(Error::Closed)
    }

    /// Requests prepared and not yet taken by the kernel (the caller's `prepared`).
    pub fn prepared(&self) -> usize {
        self.prepared.len() - self.prepared_hidden + self.uncounted - self.uncounted_hidden
    }

    /// Requests committed whose completion has not been returned.
    pub fn in_flight(&self) -> usize {
        self.running - self.hidden_running + self.ready.len()
    }

    /// Checks that `sqes` more SQEs fit the SQ, and their completions the CQ (every
    /// request not yet returned holds its completions' worth of room).
    pub fn room(&self, sqes: usize, sq_entries: usize, cq_entries: usize) -> Result<(), Error> {
        if self.prepared_sqes + self.ring_sqes + sqes > sq_entries {
            return Err(Error::Full(
                "every submission queue entry is prepared; commit() first",
            ));
        }
        let load = self.prepared_sqes + self.ring_sqes + self.pending_cqes + self.ready.len();
        if load + sqes > cq_entries {
            return Err(Error::Full(
                "prepared plus in-flight requests would exceed cq_entries; wait() for \
                 completions first",
            ));
        }
        Ok(())
    }

    /// Stores a checked request. `flags`: its link is unsafe (the core must break it),
    /// it is emulated.
    pub fn add(&mut self, entry: Entry<T>, link: Link, flags: (bool, bool)) -> u64 {
        if let Some(fd) = entry.file {
            self.files.acquire(fd);
        }
        let sqes = entry.cqes();
        self.prepared_hidden += usize::from(entry.hidden());
        let tag = self.ops.insert(entry);
        self.prepared_sqes += usize::from(sqes);
        self.prepared.push(Prepared {
            tag,
            link,
            sqes,
            unsafe_link: flags.0,
            emulated: flags.1,
        });
        tag
    }

    /// Marks a request committed (running); its completions now hold CQ room.
    pub fn commit_entry(&mut self, tag: u64, stage: Stage) {
        if let Some(entry) = self.ops.get_mut(tag) {
            entry.stage = stage;
            self.running += 1;
            self.hidden_running += usize::from(entry.hidden());
            self.pending_cqes += usize::from(entry.waiting);
            if stage == Stage::Kernel {
                self.in_kernel += 1;
            }
        }
    }

    /// Pushes a kernel segment of a chain into the SQ, linked within itself and ending
    /// there. `counted`: its requests are committed already (a held chain released);
    /// otherwise each is committed when the kernel takes it. False if the SQ lacks room.
    pub fn push_segment(&mut self, segment: &[Prepared], counted: bool) -> bool {
        let sqes: usize = segment.iter().map(Prepared::sqes).sum();
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        if ring.free_sqes() < sqes {
            return false;
        }
        let last = segment.len() - 1;
        for (i, p) in segment.iter().enumerate() {
            let link = if i == last { Link::None } else { p.link };
            self.push_request(p, link, counted);
        }
        true
    }

    /// Pushes one request's SQEs (built from its entry) with `link` after them; the SQ
    /// has room (checked by the caller).
    fn push_request(&mut self, p: &Prepared, link: Link, counted: bool) {
        self.push_all(std::slice::from_ref(p), Some(link), counted);
    }

    /// Pushes unlinked kernel requests through one view of the SQ: the fast path of a
    /// commit (the SQ has room for every prepared request by the invariant `room` keeps).
    pub fn push_plain(&mut self, batch: &[Prepared]) {
        self.push_all(batch, None, false);
    }

    /// Pushes `batch`, each request followed by `link` (`None`: its own link, which
    /// for an unlinked batch is none), and books them.
    fn push_all(&mut self, batch: &[Prepared], link: Option<Link>, counted: bool) {
        let State {
            ring,
            ops,
            pushed,
            timer_success,
            ring_sqes,
            in_kernel,
            uncounted,
            uncounted_cqes,
            uncounted_hidden,
            ..
        } = self;
        let Some(ring) = ring.as_mut() else {
            return;
        };
        let mut sq = ring.io_mut().submission();
        for p in batch {
            let Some(entry) = ops.get_mut(p.tag) else {
                continue;
            };
            let link = link.unwrap_or(p.link);
            let sqe = entry
                .op
                .to_sqe(entry.target, *timer_success, entry.deadline.is_some())
                .user_data(p.tag);
            let timer = entry
                .deadline
                .as_deref()
                .map(|t| link_timeout_sqe(t).user_data(p.tag | TIMER_BIT));
            let first = match timer {
                Some(_) => squeue::Flags::IO_LINK,
                None => link.flags(),
            };
            // SAFETY: the memory each SQE points to belongs to the op and payload in the
            // op table, kept until the request's last completion is harvested (or the
            // ring is dropped without the SQE having been submitted).
            let ok = unsafe { sq.push(&sqe.flags(first)) }.is_ok()
                && timer.is_none_or(|t| unsafe { sq.push(&t.flags(link.flags())) }.is_ok());
            assert!(
                ok,
                "submission queue overflow: free entries were checked beforehand"
            );
            entry.stage = Stage::Kernel;
            if counted {
                *in_kernel += 1;
            } else {
                *uncounted += 1;
                *uncounted_cqes += usize::from(entry.waiting);
                *uncounted_hidden += usize::from(entry.hidden());
            }
            *ring_sqes += p.sqes();
            pushed.push_back(Pushed {
                tag: p.tag,
                sqes: p.sqes(),
                counted,
            });
        }
    }

    /// Hands the SQ to the kernel; returns how many requests became committed (a request
    /// counts once its first SQE is taken; the rest stay for the next call).
    pub fn submit(&mut self) -> Result<usize, Error> {
        if self.ring_sqes == 0 {
            return Ok(0);
        }
        let taken = self.ring()?.submit()?;
        let (requests, cqes, hidden) = if taken >= self.ring_sqes {
            // The kernel took everything (the usual case): count in one step.
            self.pushed.clear();
            (self.uncounted, self.uncounted_cqes, self.uncounted_hidden)
        } else {
            self.count_partial(taken)
        };
        self.uncounted -= requests;
        self.uncounted_cqes -= cqes;
        self.uncounted_hidden -= hidden;
        self.ring_sqes -= taken.min(self.ring_sqes);
        self.running += requests;
        self.hidden_running += hidden;
        self.in_kernel += requests;
        self.pending_cqes += cqes;
        Ok(requests - hidden)
    }

    /// After a submit the kernel cut short: the requests it took (a request counts once
    /// its first SQE is taken) and their completions to come.
    fn count_partial(&mut self, taken: usize) -> (usize, usize, usize) {
        let mut left = taken;
        let (mut requests, mut cqes, mut hidden) = (0, 0, 0);
        while left > 0 {
            let Some(front) = self.pushed.front_mut() else {
                break;
            };
            let n = left.min(front.sqes);
            front.sqes -= n;
            left -= n;
            if !front.counted && front.tag != INTERNAL {
                front.counted = true;
                requests += 1;
                if let Some(entry) = self.ops.get(front.tag) {
                    cqes += usize::from(entry.waiting);
                    hidden += usize::from(entry.hidden());
                }
            }
            if front.sqes == 0 {
                self.pushed.pop_front();
            }
        }
        (requests, cqes, hidden)
    }

    /// Moves every posted CQE into the books; a request whose last completion arrived
    /// becomes ready and releases (or fails) what its chain held behind it.
    pub fn harvest(&mut self) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        let mut finished = std::mem::take(&mut self.finished);
        ring.harvest(|user_data, result| {
            if user_data == INTERNAL {
                return;
            }
            let tag = user_data & !TIMER_BIT;
            let Some(entry) = self.ops.get_mut(tag) else {
                return;
            };
            if user_data & TIMER_BIT != 0 {
                entry.timer_fired = result == -libc::ETIME;
            } else {
                entry.result = Some(result);
            }
            entry.waiting = entry.waiting.saturating_sub(1);
            self.pending_cqes = self.pending_cqes.saturating_sub(1);
            if entry.waiting == 0 {
                self.in_kernel = self.in_kernel.saturating_sub(1);
                finished.push(tag);
            }
        });
        self.ring = Some(ring);
        // Finished in CQE order, with the ring back: a held chain may be pushed.
        for tag in finished.drain(..) {
            self.finish(tag);
        }
        self.finished = finished;
        if self.ring_sqes > 0 {
            let _ = self.submit();
        }
    }

    /// The request `tag` is complete (`entry.result` set): it becomes ready, and the
    /// rest of its chain held behind it goes on or fails.
    pub fn finish(&mut self, tag: u64) {
        let Some(entry) = self.ops.remove(tag) else {
            return;
        };
        self.running -= 1;
        self.pending_cqes = self.pending_cqes.saturating_sub(usize::from(entry.waiting));
        let ok = match entry.group.as_deref().copied() {
            Some(Role::Member {
                leader,
                value,
                probe,
            }) => {
                self.hidden_running -= 1;
                let result = entry.final_result();
                self.report(leader, value, probe, result);
                // A member's payload is safe to drop anywhere (prepare_group's contract).
                result >= 0
            }
            role => {
                if let Some(Role::Leader {
                    slot: Some(slot), ..
                }) = role
                {
                    self.files.free_slot(slot);
                }
                let done = Done::from_entry(entry);
                let ok = done.result >= 0;
                self.ready.push_back(done);
                ok
            }
        };
        if self.held.is_empty() {
            return;
        }
        if let Some(held) = self.held.remove(&tag) {
            if ok || held.link == Link::Hard {
                self.dispatch(held.rest, true);
            } else {
                self.fail_chain(held.rest);
            }
        }
    }

    /// A group member's result, into its leader: the group's value, or its first error
    /// (ECANCELED aside: in a chain it only echoes an earlier failure).
    fn report(&mut self, leader: u64, is_value: bool, is_probe: bool, result: i32) {
        let Some(Role::Leader {
            value, error, more, ..
        }) = self
            .ops
            .get_mut(leader)
            .and_then(|e| e.group.as_deref_mut())
        else {
            return;
        };
        if is_value {
            *value = Some(result);
        }
        if is_probe && result > 0 {
            *more = true;
        }
        if result < 0 && result != -libc::ECANCELED && error.is_none() {
            *error = Some(result);
        }
    }

    /// Completes every request of a chain that never ran with ECANCELED.
    pub fn fail_chain(&mut self, chain: Vec<Prepared>) {
        for p in chain {
            if let Some(entry) = self.ops.get_mut(p.tag) {
                entry.result = Some(-libc::ECANCELED);
                self.finish(p.tag);
            }
        }
        self.signal();
    }

    /// Makes the eventfd readable: completions arrived that the kernel did not post.
    pub fn signal(&self) {
        if let Some(ring) = self.ring.as_ref() {
            ring.eventfd().signal();
        }
    }

    /// Hands up to `max` completions to the caller; their fds stop counting as in use.
    pub fn take(&mut self, max: usize) -> Vec<Done<T>> {
        let n = max.min(self.ready.len());
        let done: Vec<Done<T>> = self.ready.drain(..n).collect();
        for d in &done {
            if let Some(fd) = d.file {
                self.files.release(fd);
            }
        }
        done
    }

    /// Visits the requests in flight: the committed ones with their tag, the ready ones
    /// (already complete: nothing left to cancel) without.
    pub fn for_each_in_flight(&self, mut f: impl FnMut(Option<u64>, &T)) {
        self.ops.for_each(|tag, entry| {
            if entry.stage != Stage::Prepared && !entry.hidden() {
                f(Some(tag), &entry.payload);
            }
        });
        self.ready.iter().for_each(|done| f(None, &done.payload));
    }

    /// Asks to cancel the request `tag`. One in the kernel is cancelled there (never
    /// blocking: a request the kernel cannot stop completes with its result); one held or
    /// waiting for the emulator completes with ECANCELED when its turn comes.
    pub fn cancel(&mut self, tag: u64) {
        let Some(entry) = self.ops.get_mut(tag) else {
            return;
        };
        match entry.stage {
            Stage::Prepared => {}
            Stage::Held | Stage::Emulated => entry.cancelled = true,
            Stage::Kernel => self.cancel_in_kernel(tag),
        }
    }

    fn cancel_in_kernel(&mut self, tag: u64) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        // IORING_REGISTER_SYNC_CANCEL (6.0+) needs no SQE; a zero timeout returns at once
        // even for a request already running.
        let now = types::Timespec::new();
        match ring
            .io()
            .submitter()
            .register_sync_cancel(Some(now), types::CancelBuilder::user_data(tag))
        {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.push_internal(opcode::AsyncCancel::new(tag).build());
            }
            _ => {}
        }
    }

    /// Pushes and submits an internal request (its completion is ignored).
    fn push_internal(&mut self, sqe: squeue::Entry) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        // SAFETY: internal requests (cancels) point to no memory.
        if unsafe { ring.push(&sqe.user_data(INTERNAL)) } {
            self.ring_sqes += 1;
            self.pushed.push_back(Pushed {
                tag: INTERNAL,
                sqes: 1,
                counted: true,
            });
            let _ = self.submit();
        }
    }

    /// Completes every request that has not started (held chains, the emulator's queue)
    /// with ECANCELED and asks the kernel to cancel what it holds; the caller then reaps
    /// until nothing runs.
    pub fn cancel_everything(&mut self) {
        let held: Vec<Held> = self.held.drain().map(|(_, h)| h).collect();
        for h in held {
            self.fail_chain(h.rest);
        }
        while let Some(tag) = self.emulate.pop_front() {
            if let Some(entry) = self.ops.get_mut(tag) {
                entry.result = Some(-libc::ECANCELED);
                self.finish(tag);
            }
        }
        if self.in_kernel == 0 {
            return;
        }
        let all = self
            .ring
            .as_mut()
            .is_some_and(|ring| ring.cancel_all().is_ok());
        if !all {
            // No IORING_ASYNC_CANCEL_ANY (before 5.19): one cancel per request.
            let mut tags = Vec::new();
            self.ops.for_each(|tag, entry| {
                if entry.stage == Stage::Kernel {
                    tags.push(tag);
                }
            });
            for tag in tags {
                self.cancel_in_kernel(tag);
            }
        }
    }

    /// Releases every payload and descriptor; the ring itself is dropped by the caller.
    /// Descriptors opened for completions nobody took are closed here.
    pub fn release_all(&mut self) -> Vec<T> {
        self.prepared.clear();
        self.prepared_sqes = 0;
        self.prepared_hidden = 0;
        self.pushed.clear();
        self.ring_sqes = 0;
        self.uncounted = 0;
        self.uncounted_cqes = 0;
        self.uncounted_hidden = 0;
        self.hidden_running = 0;
        self.held.clear();
        self.emulate.clear();
        self.running = 0;
        self.in_kernel = 0;
        self.pending_cqes = 0;
        let mut payloads: Vec<T> = self.ops.drain().map(|e| e.payload).collect();
        payloads.extend(self.ready.drain(..).map(|d| d.payload));
        self.files.clear();
        payloads
    }
}
