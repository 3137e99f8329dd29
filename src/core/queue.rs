//! The queue: prepare / commit / wait / wakeup / close over the ring, the op table, the
//! file table and the eventfd waiter. Safe to share between threads: one thread may wait
//! while others prepare, commit and wake it up.
//!
//! Counting: every request is in exactly one of three places, and moves forward only:
//! `prepared` (an SQE in the SQ, not yet taken by the kernel), `in_kernel` (taken, CQE
//! not yet harvested) and `ready` (harvested, not yet returned to the caller).
//! `in_flight` is `in_kernel + ready`. The payload (the caller's buffer pins) lives in the
//! op table until harvest and in `ready` until returned, so the kernel never touches
//! memory the caller could have released.

use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{Error, WaitError};
use super::eventfd::{EventFd, Poll};
use super::files::FileTable;
use super::fork::fork_generation;
use super::ops::{Entry, Op, Slab};
use super::ring::{Ring, CANCEL_ID};

/// Largest SQ the kernel accepts.
pub const MAX_SQ_ENTRIES: u32 = 32768;
/// Largest CQ the kernel accepts.
pub const MAX_CQ_ENTRIES: u32 = 65536;
/// The longest a wait sleeps before letting the caller check for signals.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// What a wait yields: `V`, or how it ended early.
pub type WaitResult<V, T, E> = Result<V, WaitError<Done<T>, E>>;

/// A completed request: the caller's payload and the kernel's result (bytes or -errno).
#[derive(Debug)]
pub struct Done<T> {
    pub payload: T,
    pub result: i32,
    /// The registered fd it used; it counts as in use until the completion is returned.
    fd: RawFd,
}

struct State<T> {
    /// `None` once closed.
    ring: Option<Ring>,
    ops: Slab<T>,
    files: FileTable,
    prepared: usize,
    in_kernel: usize,
    ready: VecDeque<Done<T>>,
}

impl<T> State<T> {
    fn in_flight(&self) -> usize {
        self.in_kernel + self.ready.len()
    }

    fn ring(&mut self) -> Result<&mut Ring, Error> {
        self.ring.as_mut().ok_or(Error::Closed)
    }

    /// Moves every posted CQE into `ready`, releasing its op-table slot.
    fn harvest(&mut self) {
        let State {
            ring,
            ops,
            in_kernel,
            ready,
            ..
        } = self;
        let Some(ring) = ring else { return };
        ring.harvest(|id, result| {
            if id == CANCEL_ID {
                return;
            }
            if let Some(Entry { fd, payload, .. }) = ops.remove(id as usize) {
                *in_kernel -= 1;
                ready.push_back(Done {
                    payload,
                    result,
                    fd,
                });
            }
        });
    }

    /// Hands up to `max` completions to the caller; their fds stop counting as in use.
    fn take(&mut self, max: usize) -> Vec<Done<T>> {
        let n = max.min(self.ready.len());
        let done: Vec<Done<T>> = self.ready.drain(..n).collect();
        for d in &done {
            self.files.release(d.fd);
        }
        done
    }

    /// Cancels what the kernel holds and reaps until it has returned every request.
    fn drain_kernel(&mut self) {
        if self.in_kernel == 0 {
            return;
        }
        let prepared = self.prepared;
        if let Some(ring) = self.ring.as_mut() {
            ring.cancel_all(prepared);
        }
        loop {
            self.harvest();
            if self.in_kernel == 0 {
                return;
            }
            let Some(ring) = self.ring.as_mut() else {
                return;
            };
            if ring.wait_for_one().is_err() {
                // The kernel refused to wait (should not happen); do not spin hot.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Releases every payload and descriptor; the ring itself is dropped by the caller.
    fn release_all(&mut self) -> Vec<T> {
        self.prepared = 0;
        let mut payloads: Vec<T> = self.ops.drain().map(|e| e.payload).collect();
        payloads.extend(self.ready.drain(..).map(|d| d.payload));
        self.files.clear();
        payloads
    }
}

/// An io_uring queue whose requests carry a payload `T` (the buffers they point to).
pub struct Queue<T> {
    /// Dropped by hand: a forked child must not touch it if the fork caught it locked.
    state: ManuallyDrop<Mutex<State<T>>>,
    /// A `wakeup()` not yet seen by a `wait`.
    wake: AtomicBool,
    /// Set (under the state lock) when the ring is dropped; read without the lock so the
    /// binding can refuse a closed queue before converting any argument.
    closed: AtomicBool,
    fork_gen: u64,
    sq_entries: u32,
    cq_entries: u32,
}

impl<T> Queue<T> {
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
        let files = FileTable::new(ring.io());
        Ok(Queue {
            state: ManuallyDrop::new(Mutex::new(State {
                ring: Some(ring),
                ops: Slab::new(),
                files,
                prepared: 0,
                in_kernel: 0,
                ready: VecDeque::new(),
            })),
            wake: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            fork_gen: fork_generation(),
            sq_entries,
            cq_entries,
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
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Calls `f` on every payload the queue holds (prepared, in the kernel, or ready),
    /// for a garbage collector's traversal. Skips (returns false) if the queue is busy in
    /// another thread rather than block.
    pub fn try_for_each_payload(&self, mut f: impl FnMut(&T)) -> bool {
        let Ok(st) = self.state.try_lock() else {
            return false;
        };
        st.ops.for_each(|entry| f(&entry.payload));
        st.ready.iter().for_each(|done| f(&done.payload));
        true
    }

    fn try_lock_in_child(&self) -> Option<MutexGuard<'_, State<T>>> {
        match self.state.try_lock() {
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
        Ok(st.prepared)
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

    /// Queues `op` on registered `fd`. On failure nothing is queued and the payload is
    /// handed back, so the caller decides where it is dropped.
    ///
    /// # Safety
    /// Every byte and iovec `op` points to must stay valid and (for reads) writable for
    /// as long as `payload` lives: the queue keeps `payload` until the kernel is done
    /// with the request (its completion was returned, or the queue drained it).
    pub unsafe fn prepare(&self, fd: RawFd, op: Op, payload: T) -> Result<(), (Error, T)> {
        let mut st = match self.lock() {
            Ok(st) => st,
            Err(e) => return Err((e, payload)),
        };
        if st.ring.is_none() {
            return Err((Error::Closed, payload));
        }
        // A permanent refusal (not registered) before a transient one (full).
        let target = match st.files.target(fd) {
            Ok(t) => t,
            Err(e) => return Err((e, payload)),
        };
        if st.prepared >= self.sq_entries as usize {
            return Err((
                Error::Full("every submission queue entry is prepared; commit() first"),
                payload,
            ));
        }
        if st.prepared + st.in_flight() >= self.cq_entries as usize {
            return Err((
                Error::Full(
                    "prepared plus in-flight requests would exceed cq_entries; \
                     wait() for completions first",
                ),
                payload,
            ));
        }
        let id = st.ops.insert(Entry { op, fd, payload });
        let sqe = st.ops.get(id).expect("just inserted").op.to_sqe(target);
        let sqe = sqe.user_data(id as u64);
        let State {
            ring, ops, files, ..
        } = &mut *st;
        // SAFETY: the caller keeps the memory valid while the payload lives, and the
        // payload stays in `ops` until the completion is harvested.
        let pushed = unsafe { ring.as_mut().expect("checked open").push(&sqe) };
        if !pushed {
            // Cannot happen while `prepared < sq_entries`; refuse rather than lose it.
            let entry = ops.remove(id).expect("just inserted");
            return Err((Error::Full("submission queue full"), entry.payload));
        }
        files.acquire(fd);
        st.prepared += 1;
        Ok(())
    }

    /// Submits everything prepared; returns how many requests the kernel took. Requests
    /// it did not take stay prepared for the next commit.
    pub fn commit(&self) -> Result<usize, Error> {
        let mut st = self.lock()?;
        st.ring()?;
        if st.prepared == 0 {
            return Err(Error::Empty("nothing prepared to commit"));
        }
        let taken = st.ring()?.submit()?.min(st.prepared);
        st.prepared -= taken;
        st.in_kernel += taken;
        Ok(taken)
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
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.ring.is_none() {
            return Ok(Vec::new());
        }
        if !cancel && (st.prepared > 0 || st.in_flight() > 0) {
            return Err(Error::Busy(format!(
                "{} request(s) prepared, {} in flight or unreaped; wait() for them or \
                 close(cancel=True)",
                st.prepared,
                st.in_flight()
            )));
        }
        st.drain_kernel();
        self.closed.store(true, Ordering::Release);
        if let Some(ring) = st.ring.take() {
            // Wake a waiter in another thread so it sees the queue closed; its clone of
            // the eventfd keeps that descriptor open until it returns.
            ring.eventfd().signal();
        }
        Ok(st.release_all())
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        if self.is_forked() && self.try_lock_in_child().is_none() {
            // Locked at fork() by a thread of the parent: leak it rather than free
            // memory in an unknown state (the child's copy only; the parent is untouched).
            return;
        }
        // SAFETY: dropped exactly once, here, and never used again.
        let mut state = unsafe { ManuallyDrop::take(&mut self.state) };
        let st = state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.ring.is_none() {
            return;
        }
        if fork_generation() == self.fork_gen {
            st.drain_kernel();
        }
        st.ring = None;
        drop(st.release_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    type NoSignal = ();

    fn data_file(len: usize) -> (tempdir::Dir, File) {
        let dir = tempdir::Dir::new();
        let path = dir.path.join("data");
        let mut f = File::create(&path).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        f.write_all(&bytes).unwrap();
        drop(f);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (dir, f)
    }

    /// A tiny self-cleaning temp dir (no extra crate needed).
    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path =
                    std::env::temp_dir().join(format!("uringq-core-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    /// A pipe whose read end never has data unless a test writes it.
    fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        unsafe {
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    fn no_check() -> Result<(), NoSignal> {
        Ok(())
    }

    fn read(q: &Queue<Vec<u8>>, fd: RawFd, offset: u64, len: usize) {
        let mut buf = vec![0u8; len];
        let op = Op::Read {
            ptr: buf.as_mut_ptr(),
            len,
            offset,
        };
        unsafe { q.prepare(fd, op, buf) }
            .map_err(|(e, _)| e)
            .unwrap();
    }

    #[test]
    fn read_round_trip_in_random_order() {
        let (_dir, f) = data_file(64 * 4096);
        let q: Queue<Vec<u8>> = Queue::new(32, 64).unwrap();
        let fd = f.as_raw_fd();
        q.register(fd).unwrap();
        let order: Vec<u64> = (0..64u64).map(|i| (i * 37) % 64).collect();
        let mut seen = 0;
        for chunk in order.chunks(16) {
            for &block in chunk {
                read(&q, fd, block * 4096, 4096);
            }
            assert_eq!(q.commit().unwrap(), chunk.len());
            let done = q.wait(chunk.len(), usize::MAX, None, no_check).unwrap();
            assert_eq!(done.len(), chunk.len());
            for d in done {
                assert_eq!(d.result, 4096);
                let first = d.payload[0] as usize;
                // The pattern tells which block this is: check it all.
                let block_start = (0..64)
                    .map(|b| b * 4096)
                    .find(|s| s % 251 == first)
                    .unwrap();
                assert!(d
                    .payload
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == ((block_start + i) % 251) as u8));
                seen += 1;
            }
        }
        assert_eq!(seen, 64);
        assert_eq!(q.in_flight().unwrap(), 0);
        q.close(false).unwrap();
    }

    #[test]
    fn short_read_at_eof_and_errors_as_negative_errno() {
        let (_dir, f) = data_file(100);
        let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
        let fd = f.as_raw_fd();
        q.register(fd).unwrap();
        read(&q, fd, 50, 4096);
        q.commit().unwrap();
        let done = q.wait(1, 1, None, no_check).unwrap();
        assert_eq!(done[0].result, 50);

        let ro = File::open(_dir.path.join("data")).unwrap();
        q.register(ro.as_raw_fd()).unwrap();
        let data = vec![1u8; 10];
        let op = Op::Write {
            ptr: data.as_ptr(),
            len: 10,
            offset: 0,
        };
        unsafe { q.prepare(ro.as_raw_fd(), op, data) }
            .map_err(|(e, _)| e)
            .unwrap();
        q.commit().unwrap();
        let done = q.wait(1, 1, None, no_check).unwrap();
        assert_eq!(done[0].result, -libc::EBADF);
    }

    #[test]
    fn capacity_is_checked_before_queuing() {
        let (_dir, f) = data_file(4096);
        let q: Queue<Vec<u8>> = Queue::new(2, 3).unwrap();
        let fd = f.as_raw_fd();
        q.register(fd).unwrap();
        read(&q, fd, 0, 1);
        read(&q, fd, 0, 1);
        let buf = vec![0u8; 1];
        let full = unsafe { q.prepare(fd, Op::Fsync { datasync: false }, buf) };
        assert!(matches!(full, Err((Error::Full(_), _))));
        assert_eq!(q.commit().unwrap(), 2);
        read(&q, fd, 0, 1); // 2 in flight + 1 prepared == cq_entries
        let over = unsafe { q.prepare(fd, Op::Fsync { datasync: true }, vec![]) };
        assert!(matches!(over, Err((Error::Full(_), _))));
        assert_eq!(q.prepared().unwrap(), 1);
        assert!(matches!(q.close(false), Err(Error::Busy(_))));
        let drained = q.close(true).unwrap();
        assert_eq!(drained.len(), 3);
        assert!(matches!(q.commit(), Err(Error::Closed)));
        assert!(
            q.close(false).unwrap().is_empty(),
            "closing twice is a no-op"
        );
    }

    #[test]
    fn unregistered_fd_and_empty_queue_are_refused() {
        let q: Queue<()> = Queue::new(2, 4).unwrap();
        let r = unsafe { q.prepare(0, Op::Fsync { datasync: false }, ()) };
        assert!(matches!(r, Err((Error::NotRegistered(0), ()))));
        assert!(matches!(q.commit(), Err(Error::Empty(_))));
        assert!(matches!(
            q.wait(1, 1, None, no_check),
            Err(WaitError::Queue(Error::Empty(_)))
        ));
        assert!(matches!(q.deregister(5), Err(Error::NotRegistered(5))));
        let r = q
            .wait(1, 4, Some(Duration::from_millis(20)), no_check)
            .unwrap();
        assert!(
            r.is_empty(),
            "a timed wait with nothing in flight returns []"
        );
    }

    #[test]
    fn wakeup_is_never_lost_and_coalesces() {
        let q: Queue<()> = Queue::new(2, 4).unwrap();
        q.wakeup().unwrap();
        q.wakeup().unwrap();
        let r = q.wait(1, 1, Some(Duration::from_secs(5)), no_check);
        assert!(matches!(r, Err(WaitError::Interrupted(v)) if v.is_empty()));
        let r = q
            .wait(0, 1, Some(Duration::from_millis(10)), no_check)
            .unwrap();
        assert!(r.is_empty(), "two wakeups count once");
    }

    #[test]
    fn wakeup_from_another_thread_interrupts_a_blocked_wait() {
        let q: Arc<Queue<()>> = Arc::new(Queue::new(2, 4).unwrap());
        let q2 = q.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            q2.wakeup().unwrap();
        });
        let start = Instant::now();
        let r = q.wait(1, 1, Some(Duration::from_secs(10)), no_check);
        assert!(matches!(r, Err(WaitError::Interrupted(_))));
        assert!(start.elapsed() < Duration::from_secs(2));
        t.join().unwrap();
    }

    #[test]
    fn pipe_read_in_flight_is_cancelled_on_close() {
        let (rd, _wr) = pipe();
        let fds = [rd.as_raw_fd()];
        let q: Queue<Vec<u8>> = Queue::new(2, 4).unwrap();
        q.register(fds[0]).unwrap();
        read(&q, fds[0], 0, 16);
        q.commit().unwrap();
        let r = q
            .wait(1, 1, Some(Duration::from_millis(20)), no_check)
            .unwrap();
        assert!(r.is_empty(), "nothing was written to the pipe");
        assert_eq!(q.close(true).unwrap().len(), 1);
    }

    #[test]
    fn close_from_another_thread_ends_a_wait() {
        let (rd, _wr) = pipe();
        let fds = [rd.as_raw_fd()];
        let q: Arc<Queue<Vec<u8>>> = Arc::new(Queue::new(2, 4).unwrap());
        q.register(fds[0]).unwrap();
        read(&q, fds[0], 0, 16);
        q.commit().unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            q2.close(true).unwrap().len()
        });
        let r = q.wait(1, 1, None, no_check);
        assert!(matches!(r, Err(WaitError::Closed(_))), "{r:?}");
        assert_eq!(t.join().unwrap(), 1);
    }

    #[test]
    fn a_failing_signal_check_loses_nothing() {
        let (rd, _wr) = pipe();
        let fds = [rd.as_raw_fd()];
        let (_dir, f) = data_file(4096);
        let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
        q.register(f.as_raw_fd()).unwrap();
        q.register(fds[0]).unwrap();
        read(&q, f.as_raw_fd(), 0, 4096);
        read(&q, fds[0], 0, 16);
        q.commit().unwrap();
        let calls = AtomicUsize::new(0);
        let r = q.wait(2, 2, None, || {
            calls.fetch_add(1, Ordering::Relaxed);
            Err("KeyboardInterrupt")
        });
        assert!(matches!(r, Err(WaitError::Signal("KeyboardInterrupt"))));
        assert_eq!(q.in_flight().unwrap(), 2);
        let done = q.wait(1, 1, None, no_check).unwrap();
        assert_eq!(done[0].result, 4096, "the file read is still there");
        assert_eq!(q.close(true).unwrap().len(), 1);
    }

    #[test]
    fn deregister_is_refused_while_in_use_and_pins_the_file() {
        let (dir, f) = data_file(4096);
        let q: Queue<Vec<u8>> = Queue::new(2, 4).unwrap();
        let fd = f.as_raw_fd();
        q.register(fd).unwrap();
        read(&q, fd, 0, 4);
        assert!(matches!(q.deregister(fd), Err(Error::Busy(_))));
        q.commit().unwrap();
        q.wait(1, 1, None, no_check).unwrap();
        // Close the caller's fd: the registration still reaches the file.
        drop(f);
        read(&q, fd, 4, 4);
        q.commit().unwrap();
        let done = q.wait(1, 1, None, no_check).unwrap();
        assert_eq!(done[0].result, 4);
        assert_eq!(done[0].payload, vec![4, 5, 6, 7]);
        q.deregister(fd).unwrap();
        drop(dir);
    }

    #[test]
    fn completions_left_behind_by_max_events_keep_the_eventfd_readable() {
        let (_dir, f) = data_file(4096);
        let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
        q.register(f.as_raw_fd()).unwrap();
        read(&q, f.as_raw_fd(), 0, 16);
        read(&q, f.as_raw_fd(), 16, 16);
        q.commit().unwrap();
        let first = q.wait(2, 2, None, no_check).unwrap();
        assert_eq!(first.len(), 2);
        read(&q, f.as_raw_fd(), 0, 16);
        read(&q, f.as_raw_fd(), 16, 16);
        q.commit().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let one = q.wait(0, 1, Some(Duration::ZERO), no_check).unwrap();
        assert_eq!(one.len(), 1);
        let mut pfd = libc::pollfd {
            fd: q.eventfd().unwrap(),
            events: libc::POLLIN,
            revents: 0,
        };
        assert_eq!(
            unsafe { libc::poll(&mut pfd, 1, 0) },
            1,
            "one is still ready"
        );
        assert_eq!(
            q.wait(0, 1, Some(Duration::ZERO), no_check).unwrap().len(),
            1
        );
    }

    #[test]
    fn sizes_are_validated() {
        assert!(matches!(Queue::<()>::new(0, 2), Err(Error::Invalid(_))));
        assert!(matches!(Queue::<()>::new(3, 6), Err(Error::Invalid(_))));
        assert!(matches!(Queue::<()>::new(8, 4), Err(Error::Invalid(_))));
        assert!(matches!(Queue::<()>::new(8, 65537), Err(Error::Invalid(_))));
        let q = Queue::<()>::new(1, 1).unwrap();
        assert_eq!((q.sq_entries(), q.cq_entries()), (1, 1));
    }
}
