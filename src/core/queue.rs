//! The queue: prepare / commit / wait / wakeup / cancel / close over the ring, the op
//! table, the file table and the eventfd waiter. Safe to share between threads: one
//! thread may wait while others prepare, commit and wake it up.
//!
//! The books (where every request is, see [`state`](super::state)) live behind one
//! lock. The payload (the caller's buffer pins) lives in the op table until harvest and
//! in `ready` until returned, so the kernel never touches memory the caller could have
//! released.

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::emulate::{self, Shared};
use super::error::{Error, WaitError};
use super::eventfd::{EventFd, Poll};
use super::files::FileTable;
use super::fork::fork_generation;
use super::ops::{timespec, Request, Target};
use super::probe::{kernel_at_least, Opcodes};
use super::ring::Ring;
use super::slab::{Entry, Role, Stage};
use super::state::{Done, State};

/// Largest SQ the kernel accepts.
pub const MAX_SQ_ENTRIES: u32 = 32768;
/// Largest CQ the kernel accepts.
pub const MAX_CQ_ENTRIES: u32 = 65536;
/// The longest a wait sleeps before letting the caller check for signals.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// What a wait yields: `V`, or how it ended early.
pub type WaitResult<V, T, E> = Result<V, WaitError<Done<T>, E>>;

/// An io_uring queue whose requests carry a payload `T` (the buffers they point to).
pub struct Queue<T> {
    /// The books behind their lock, shared with the emulator thread. Dropped by hand: a
    /// forked child must not touch them if the fork caught them locked.
    shared: ManuallyDrop<Arc<Shared<T>>>,
    /// A `wakeup()` not yet seen by a `wait`.
    wake: AtomicBool,
    /// Set (under the state lock) when the ring is dropped; read without the lock so the
    /// binding can refuse a closed queue before converting any argument.
    closed: AtomicBool,
    fork_gen: u64,
    sq_entries: u32,
    cq_entries: u32,
    /// The opcodes this kernel supports (probed with the ring).
    opcodes: Opcodes,
    /// An expired timer counts as a success in a chain (IORING_TIMEOUT_ETIME_SUCCESS,
    /// 5.16+); before that, a linked timer breaks its chain.
    timer_success: bool,
}

impl<T: Send + 'static> Queue<T> {
    /// Creates a ring with `sq_entries` SQ entries (a power of two, at most 32768) and room
    /// for `cq_entries` completions (`sq_entries..=65536`).
    pub fn new(sq_entries: u32, cq_entries: u32) -> Result<Self, Error> {
        if sq_entries == 0 || sq_entries > MAX_SQ_ENTRIES || !sq_entries.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "sq_entries must be a power of two in 1..={MAX_SQ_ENTRIES}, got {sq_entries}"
            )));
        }
        if cq_entries < sq_entries || cq_entries > MAX_CQ_ENTRIES {
            return Err(Error::Invalid(format!(
                "cq_entries must be in sq_entries..={MAX_CQ_ENTRIES} ({sq_entries}..=\
                 {MAX_CQ_ENTRIES}), got {cq_entries}"
            )));
        }
        let ring = Ring::new(sq_entries, cq_entries)?;
        let opcodes = ring.opcodes();
        let timer_success = kernel_at_least(5, 16);
        let files = FileTable::new(ring.io());
        Ok(Queue {
            shared: ManuallyDrop::new(Arc::new(Shared {
                state: Mutex::new(State::new(ring, files, timer_success)),
                work: Condvar::new(),
            })),
            wake: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            fork_gen: fork_generation(),
            sq_entries,
            cq_entries,
            opcodes,
            timer_success,
        })
    }

    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    pub fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// True in a child process forked after this queue was created.
    pub fn is_forked(&self) -> bool {
        fork_generation() != self.fork_gen
    }

    fn lock(&self) -> Result<MutexGuard<'_, State<T>>, Error> {
        if self.is_forked() {
            return Err(Error::Forked);
        }
        // A panic while locked leaves consistent counters (no unwinding mid-update of
        // kernel state), so a poisoned lock is still usable.
        Ok(self.shared.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Calls `f` on every payload the queue holds (prepared, in the kernel, or ready),
    /// for a garbage collector's traversal. Skips (returns false) if the queue is busy in
    /// another thread rather than block.
    pub fn try_for_each_payload(&self, mut f: impl FnMut(&T)) -> bool {
        let Ok(st) = self.shared.state.try_lock() else {
            return false;
        };
        st.ops.for_each(|_, entry| f(&entry.payload));
        st.ready.iter().for_each(|done| f(&done.payload));
        true
    }

    fn try_lock_in_child(&self) -> Option<MutexGuard<'_, State<T>>> {
        match self.shared.state.try_lock() {
            Ok(st) => Some(st),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        // Acquire pairs with the Release store in `close`: whoever sees `true` also sees
        // the ring gone. A stale `false` is harmless: the locked path checks again.
        self.closed.load(Ordering::Acquire)
    }

    /// Requests prepared but not yet taken by the kernel.
    pub fn prepared(&self) -> Result<usize, Error> {
        let st = self.lock()?;
        st.ring.as_ref().ok_or(Error::Closed)?;
        Ok(st.prepared())
    }

    /// Requests committed whose completion has not been returned to the caller.
    pub fn in_flight(&self) -> Result<usize, Error> {
        let st = self.lock()?;
        st.ring.as_ref().ok_or(Error::Closed)?;
        Ok(st.in_flight())
    }

    /// The eventfd: readable when completions may be ready or a wakeup is pending.
    pub fn eventfd(&self) -> Result<RawFd, Error> {
        let mut st = self.lock()?;
        Ok(st.ring()?.eventfd().as_raw_fd())
    }

    pub fn register(&self, fd: RawFd) -> Result<(), Error> {
        let mut st = self.lock()?;
        let State { ring, files, .. } = &mut *st;
        let ring = ring.as_ref().ok_or(Error::Closed)?;
        files.register(ring.io(), fd)
    }

    /// Registers `fd` without a duplicate or a slot (see `FileTable::adopt`).
    pub fn adopt(&self, fd: RawFd) -> Result<(), Error> {
        let mut st = self.lock()?;
        st.ring()?;
        st.files.adopt(fd)
    }

    pub fn deregister(&self, fd: RawFd) -> Result<(), Error> {
        let mut st = self.lock()?;
        let State { ring, files, .. } = &mut *st;
        let ring = ring.as_ref().ok_or(Error::Closed)?;
        files.deregister(ring.io(), fd)
    }

    /// A new descriptor for the file registered as `fd`, owned by the caller: a batch
    /// keeps using its file even if another thread deregisters `fd` or closes the queue
    /// meanwhile.
    pub fn lend_file(&self, fd: RawFd) -> Result<OwnedFd, Error> {
        let mut st = self.lock()?;
        st.ring()?;
        let dup = st.files.dup_of(fd)?;
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor the table owns; the result is checked.
        let lent = unsafe { libc::fcntl(dup, libc::F_DUPFD_CLOEXEC, 0) };
        if lent < 0 {
            return Err(Error::Os(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor, now owned by the caller.
        Ok(unsafe { OwnedFd::from_raw_fd(lent) })
    }

    /// Treats `opcode` as missing from the kernel (tests of the emulator).
    #[cfg(test)]
    pub fn hide_opcode(&mut self, opcode: u8) {
        self.opcodes.remove(opcode);
    }

    /// True if the kernel runs `opcode` itself.
    pub fn supports(&self, opcode: u8) -> bool {
        self.opcodes.supports(opcode)
    }

    /// Queues `req`. On failure nothing is queued and the payload is handed back, so the
    /// caller decides where it is dropped.
    ///
    /// # Safety
    /// Every byte and iovec `req.op` points to outside itself must stay valid and (for
    /// reads) writable for as long as `payload` lives: the queue keeps `payload` until
    /// the kernel is done with the request (its completion was returned, or the queue
    /// drained it).
    pub unsafe fn prepare(&self, req: Request, payload: T) -> Result<(), (Error, T)> {
        let mut st = match self.lock() {
            Ok(st) => st,
            Err(e) => return Err((e, payload)),
        };
        let sqes = 1 + usize::from(req.deadline.is_some());
        let checked = self
            .check(&st, &req, true)
            .and_then(|flags| Ok((flags, st.room(sqes, self.sq(), self.cq())?)));
        match checked {
            Ok((flags, ())) => {
                let link = req.link;
                let entry = self.entry(&st, req, payload, None);
                st.add(entry, link, flags);
                Ok(())
            }
            Err(e) => Err((e, payload)),
        }
    }

    /// True if this queue can run groups on direct descriptors (kernel 5.15+ and a
    /// sparse file table).
    pub fn has_direct(&self) -> bool {
        kernel_at_least(5, 15)
            && self.opcodes.supports(io_uring::opcode::OpenAt::CODE)
            && self.opcodes.supports(io_uring::opcode::Close::CODE)
            && self.lock().is_ok_and(|st| st.files.has_slots())
    }

    /// Queues a *group*: the chain of requests `build` returns, seen by the caller as one
    /// request whose completion is the last one's (the leader, with `leader` as payload)
    /// and whose result is that of `members[value]`, or the first error of any; a
    /// positive result of `members[probe]` (an EOF probe) sets the completion's `more`. With
    /// `direct`, `build` gets a free direct descriptor slot (freed once the group
    /// completed); without a free slot the group is refused with `Full`. Every opcode
    /// must be the kernel's own (no emulation inside a group).
    ///
    /// # Safety
    /// As for [`prepare`](Self::prepare), with `leader` keeping alive what every member
    /// points to. The members get payloads from `member`, which the queue drops wherever
    /// they complete (possibly in another thread, under its lock): they must be safe to
    /// drop anywhere.
    pub unsafe fn prepare_group(
        &self,
        direct: bool,
        (value, probe): (usize, Option<usize>),
        build: impl FnOnce(Option<u32>) -> Vec<Request>,
        leader: T,
        member: impl Fn() -> T,
    ) -> Result<(), (Error, T)> {
        let mut st = match self.lock() {
            Ok(st) => st,
            Err(e) => return Err((e, leader)),
        };
        if st.ring.is_none() {
            return Err((Error::Closed, leader));
        }
        let slot = match direct {
            false => None,
            true => match st.files.alloc_slot() {
                Some(slot) => Some(slot),
                None => {
                    return Err((
                        Error::Full("every direct descriptor slot is in use"),
                        leader,
                    ))
                }
            },
        };
        let requests = build(slot);
        let sqes: usize = requests
            .iter()
            .map(|r| 1 + usize::from(r.deadline.is_some()))
            .sum();
        let mut checked = Vec::with_capacity(requests.len());
        let refusal = requests
            .iter()
            .try_for_each(|r| {
                let flags = self.check(&st, r, false)?;
                checked.push(flags);
                Ok(())
            })
            .and_then(|()| st.room(sqes, self.sq(), self.cq()));
        if let Err(e) = refusal {
            if let Some(slot) = slot {
                st.files.free_slot(slot);
            }
            return Err((e, leader));
        }
        let last = requests.len() - 1;
        let mut members = Vec::with_capacity(last);
        for (i, (req, flags)) in requests.into_iter().zip(checked).enumerate() {
            let link = req.link;
            if i == last {
                let role = Role::Leader {
                    value: None,
                    more: false,
                    error: None,
                    slot,
                };
                let entry = self.entry(&st, req, leader, Some(role));
                let leader_tag = st.add(entry, link, flags);
                for (tag, role) in members {
                    if let Some(entry) = st.ops.get_mut(tag) {
                        entry.group = Some(Box::new(role));
                        if let Some(Role::Member { leader, .. }) = entry.group.as_deref_mut() {
                            *leader = leader_tag;
                        }
                    }
                }
                break;
            }
            // Marked a member now (so it is counted as hidden); its leader comes last.
            let role = Role::Member {
                leader: 0,
                value: i == value,
                probe: probe == Some(i),
            };
            let entry = self.entry(&st, req, member(), Some(role));
            let tag = st.add(entry, link, flags);
            members.push((tag, role));
        }
        Ok(())
    }

    fn sq(&self) -> usize {
        self.sq_entries as usize
    }

    fn cq(&self) -> usize {
        self.cq_entries as usize
    }

    /// The permanent refusals of a request (a closed queue, an fd not registered, an
    /// opcode neither the kernel nor the emulator runs), before the transient one (a
    /// full queue). Returns its flags: the core must break its soft link itself; it is
    /// emulated (only with `emulate`).
    fn check(&self, st: &State<T>, req: &Request, emulate: bool) -> Result<(bool, bool), Error> {
        if st.ring.is_none() {
            return Err(Error::Closed);
        }
        if let Some(fd) = req.file {
            st.files.target(fd)?;
        }
        let emulated = !self.opcodes.supports(req.op.opcode());
        if emulated && !(emulate && req.op.emulatable()) {
            return Err(Error::Unsupported(req.op.opcode()));
        }
        Ok((
            req.op.fails_silently_in_chains(self.timer_success),
            emulated,
        ))
    }

    /// The op-table entry of a checked request.
    fn entry(&self, st: &State<T>, req: Request, payload: T, role: Option<Role>) -> Entry<T> {
        let target = match (req.file, req.slot) {
            (Some(fd), _) => st.files.target(fd).unwrap_or(Target::Fd(fd)),
            (None, Some(slot)) => Target::Fixed(slot),
            (None, None) => Target::Fd(-1),
        };
        let mut entry = Entry {
            op: req.op,
            file: req.file,
            target,
            payload,
            deadline: req.deadline.map(timespec),
            waiting: 0,
            result: None,
            timer_fired: false,
            stage: Stage::Prepared,
            cancelled: false,
            group: role.map(Box::new),
        };
        entry.waiting = entry.cqes();
        entry
    }

    /// Submits everything prepared; returns how many requests the kernel took. Requests
    /// it did not take stay prepared for the next commit.
    pub fn commit(&self) -> Result<usize, Error> {
        let mut st = self.lock()?;
        st.ring()?;
        if st.prepared() == 0 {
            return Err(Error::Empty("nothing prepared to commit"));
        }
        let committed = st.commit_prepared();
        let taken = st.submit();
        self.kick_emulator(&mut st);
        Ok(committed + taken?)
    }

    /// Wakes the emulator for queued jobs, starting it if needed; if no thread can be
    /// started, the jobs complete with EAGAIN rather than wait for ever.
    fn kick_emulator(&self, st: &mut State<T>) {
        if st.emulate.is_empty() {
            return;
        }
        if emulate::ensure_started(&self.shared, st) {
            self.shared.work.notify_all();
            return;
        }
        while let Some(tag) = st.emulate.pop_front() {
            if let Some(entry) = st.ops.get_mut(tag) {
                entry.result = Some(-libc::EAGAIN);
                st.finish(tag);
            }
        }
        st.signal();
    }

    /// Calls `f` with the tag and payload of every request in flight (the tag is `None`
    /// for one already complete and not yet returned), for a caller choosing what to
    /// cancel. `f` runs under the queue's lock: it must not call back into the queue.
    pub fn for_each_in_flight(&self, f: impl FnMut(Option<u64>, &T)) -> Result<(), Error> {
        let st = self.lock()?;
        st.ring.as_ref().ok_or(Error::Closed)?;
        st.for_each_in_flight(f);
        Ok(())
    }

    /// Asks the kernel to cancel the requests `tags` (from
    /// [`for_each_in_flight`](Self::for_each_in_flight)). Each completes as usual:
    /// ECANCELED if the cancel won, its own result if it finished first.
    pub fn cancel(&self, tags: &[u64]) -> Result<(), Error> {
        let mut st = self.lock()?;
        st.ring()?;
        for &tag in tags {
            st.cancel(tag);
        }
        st.harvest();
        self.kick_emulator(&mut st);
        Ok(())
    }

    /// Makes a blocked (or the next) `wait` raise `Interrupted`. Wakeups coalesce.
    pub fn wakeup(&self) -> Result<(), Error> {
        let efd = self.lock()?.ring()?.eventfd().clone();
        // Release pairs with the Acquire swap in `wait`: a waiter that sees the flag also
        // sees everything the waking thread did before. The eventfd write only wakes it.
        self.wake.store(true, Ordering::Release);
        efd.signal();
        Ok(())
    }

    /// Validates a wait and takes what is ready without blocking: `Some` when the wait is
    /// already satisfied (or `timeout` is zero), `None` when the caller must block in
    /// [`wait`](Self::wait). Lets the binding skip releasing the GIL on the fast path.
    pub fn wait_ready<E>(
        &self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
    ) -> WaitResult<Option<Vec<Done<T>>>, T, E> {
        if max == 0 || min > max {
            return Err(WaitError::Queue(Error::Invalid(format!(
                "need 0 <= min_events <= max_events and max_events >= 1, got \
                 min_events={min}, max_events={max}"
            ))));
        }
        let mut st = self.lock()?;
        st.ring()?;
        let woken = self.wake.load(Ordering::Acquire);
        if timeout.is_none() && !woken {
            if st.in_flight() == 0 {
                return Err(WaitError::Queue(Error::Empty(
                    "nothing in flight to wait for (commit() first, or pass a timeout)",
                )));
            }
            if min > st.in_flight() {
                return Err(WaitError::Queue(Error::Invalid(format!(
                    "min_events={min} can never be met: only {} request(s) in flight \
                     (pass a timeout to wait anyway)",
                    st.in_flight()
                ))));
            }
        }
        let expired = timeout.is_some_and(|t| t.is_zero());
        self.take_if_ready(&mut st, min, max, expired)
    }

    /// One look at the queue: harvest, then a pending wakeup wins, then a satisfied (or
    /// expired) wait takes up to `max`.
    fn take_if_ready<E>(
        &self,
        st: &mut State<T>,
        min: usize,
        max: usize,
        expired: bool,
    ) -> WaitResult<Option<Vec<Done<T>>>, T, E> {
        if let Some(ring) = st.ring.as_ref() {
            ring.eventfd().reset();
        }
        st.harvest();
        self.kick_emulator(st);
        if self.wake.swap(false, Ordering::Acquire) {
            return Err(WaitError::Interrupted(Self::take_and_rearm(st, max)));
        }
        if st.ready.len() >= min || expired {
            return Ok(Some(Self::take_and_rearm(st, max)));
        }
        Ok(None)
    }

    /// Like [`take_if_ready`](Self::take_if_ready) for a wait without a timeout, whose
    /// `min` was checked against `in_flight` on entry: if another thread has since taken
    /// some of those completions, wait only for what is still in flight, never forever.
    fn take_if_ready_untimed<E>(
        &self,
        st: &mut State<T>,
        min: usize,
        max: usize,
    ) -> WaitResult<Option<Vec<Done<T>>>, T, E> {
        let reachable = min.min(st.in_flight());
        self.take_if_ready(st, reachable, max, false)
    }

    /// Takes up to `max` ready completions; if some stay behind (`max` was reached), the
    /// eventfd is signalled again so a poller (asyncio) comes back for them.
    fn take_and_rearm(st: &mut State<T>, max: usize) -> Vec<Done<T>> {
        let done = st.take(max);
        if !st.ready.is_empty() {
            if let Some(ring) = st.ring.as_ref() {
                ring.eventfd().signal();
            }
        }
        done
    }

    /// Waits for completions.
    ///
    /// Returns between `min` and `max` completions, or fewer when `timeout` passes. With
    /// no timeout, nothing in flight is `Empty` and `min > in_flight` is `Invalid`.
    /// Sleeps in slices of at most 100 ms and calls `check` after each slice or signal
    /// (the binding runs Python's signal handlers there); if `check` fails, nothing is
    /// taken and the error is returned, so no completion is lost.
    pub fn wait<E>(
        &self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
        check: impl FnMut() -> Result<(), E>,
    ) -> WaitResult<Vec<Done<T>>, T, E> {
        match self.wait_ready(min, max, timeout)? {
            Some(done) => Ok(done),
            None => self.block(min, max, timeout, check),
        }
    }

    /// The blocking part of [`wait`](Self::wait), for a caller that has just had `None`
    /// from [`wait_ready`](Self::wait_ready) with the same arguments (the binding calls
    /// `wait_ready` holding the GIL, then this without it).
    pub fn block<E>(
        &self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> WaitResult<Vec<Done<T>>, T, E> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let efd: Arc<EventFd> = self.lock()?.ring()?.eventfd().clone();
        loop {
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(SIGNAL_SLICE),
                None => SIGNAL_SLICE,
            };
            match efd.poll(slice) {
                Ok(Poll::Ready) => {}
                Ok(Poll::TimedOut) | Ok(Poll::Interrupted) => check().map_err(WaitError::Signal)?,
                Err(e) => return Err(WaitError::Queue(Error::Os(e))),
            }
            let mut st = self.lock()?;
            if st.ring.is_none() {
                return Err(WaitError::Closed(Vec::new()));
            }
            let ready = match deadline {
                None if timeout.is_none() => self.take_if_ready_untimed(&mut st, min, max)?,
                _ => {
                    let expired = deadline.is_some_and(|d| Instant::now() >= d);
                    self.take_if_ready(&mut st, min, max, expired)?
                }
            };
            if let Some(done) = ready {
                return Ok(done);
            }
        }
    }

    /// Closes the queue. Without `cancel`, refuses (`Busy`) while requests are prepared,
    /// in flight or unreaped. With `cancel`, cancels what the kernel holds, waits until
    /// it has released every buffer, drops the rest and frees the ring. Returns the
    /// payloads so the caller drops them where it may (e.g. holding the GIL). Closing a
    /// closed queue does nothing. In a forked child only the child's memory is released:
    /// the shared ring is never entered.
    pub fn close(&self, cancel: bool) -> Result<Vec<T>, Error> {
        if self.is_forked() {
            self.closed.store(true, Ordering::Release);
            // A parent thread may have held the lock at fork(); it will never release it
            // here, and what it guarded may be half-updated: then leave it all alone.
            let Some(mut st) = self.try_lock_in_child() else {
                return Ok(Vec::new());
            };
            st.ring = None;
            return Ok(st.release_all());
        }
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.ring.is_none() {
            return Ok(Vec::new());
        }
        if !cancel && (st.prepared() > 0 || st.in_flight() > 0) {
            return Err(Error::Busy(format!(
                "{} request(s) prepared, {} in flight or unreaped; wait() for them or \
                 close(cancel=True)",
                st.prepared(),
                st.in_flight()
            )));
        }
        st = drain(&self.shared, st);
        self.closed.store(true, Ordering::Release);
        if let Some(ring) = st.ring.take() {
            // Wake a waiter in another thread so it sees the queue closed; its clone of
            // the eventfd keeps that descriptor open until it returns.
            ring.eventfd().signal();
        }
        st.shutdown = true;
        self.shared.work.notify_all();
        Ok(st.release_all())
    }
}

/// Cancels everything and reaps until nothing runs: no buffer, path or statx buffer is
/// released while the kernel (or the emulator) may still use it.
fn drain<'a, T>(
    shared: &'a Shared<T>,
    mut st: MutexGuard<'a, State<T>>,
) -> MutexGuard<'a, State<T>> {
    loop {
        st.cancel_everything();
        st.harvest();
        if st.running == 0 {
            return st;
        }
        if st.emulator_busy() {
            // The emulator needs the lock to finish its job.
            st = shared
                .work
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        if st.in_kernel == 0 {
            // Nothing left that could complete: the books say otherwise only if they are
            // wrong. Release what is left rather than hang.
            debug_assert_eq!(st.running, 0, "requests running with nothing to run them");
            return st;
        }
        let Some(ring) = st.ring.as_mut() else {
            return st;
        };
        if ring.wait_for_one().is_err() {
            // The kernel refused to wait (should not happen); do not spin hot.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        let forked = fork_generation() != self.fork_gen;
        if forked && self.shared.state.try_lock().is_err() {
            // Locked at fork() by a thread of the parent: leak it rather than free
            // memory in an unknown state (the child's copy only; the parent is untouched).
            return;
        }
        // SAFETY: dropped exactly once, here, and never used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.ring.is_some() {
            if !forked {
                st = drain(&shared, st);
            }
            st.ring = None;
            // Payloads are dropped here, by whoever drops the queue (not the emulator).
            drop(st.release_all());
        }
        st.shutdown = true;
        shared.work.notify_all();
        drop(st);
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
