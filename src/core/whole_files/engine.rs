//! The ring side of a whole-file run: a private ring per thread with a direct-descriptor
//! table, and a sliding window of per-file chains on it.
//!
//! With direct descriptors (Linux 5.17+, `IORING_FEAT_LINKED_FILE`) each file is one chain
//! the kernel runs by itself: OPENAT into table slot `s` (IO_LINK, so a failed open
//! cancels the rest; CQE_SKIP_SUCCESS) -> the data request on fixed file `s`
//! (IO_HARDLINK: a short read or failed write must not cancel the close) -> [an extra
//! request, IO_HARDLINK: the EOF probe of a read, the FSYNC of a write] -> CLOSE of slot
//! `s`. The CLOSE's completion is the chain's last (a failed OPENAT's is, when it skips
//! success: the rest of its link then posts none), so a slot is reused only once it has
//! arrived. Without direct descriptors (plain mode) OPENAT returns an ordinary
//! descriptor and the rest of the chain follows once it is known.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::super::batch::{cancel_private, private_ring};
use super::super::fork::fork_generation;
use super::paths::Paths;

/// How often a run lets the caller check for signals.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// `user_data` = slot << 2 | stage.
const OPEN: u64 = 0;
const DATA: u64 = 1;
const EXTRA: u64 = 2;
const CLOSE: u64 = 3;

/// How this kernel lets us open files in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// OPENAT into a direct descriptor, linked to the rest of the chain.
    Direct,
    /// OPENAT to an ordinary descriptor; the rest follows its completion.
    Plain,
}

/// Sizes of a run, settable for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Files in flight at most.
    pub window: u32,
    /// Bytes of a read slot: a file shorter than this is read by its chain alone.
    pub buffer: usize,
    /// Use plain descriptors even where direct ones work.
    pub plain: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            window: 32,
            buffer: 64 * 1024,
            plain: false,
        }
    }
}

/// What the kernel offers, probed once per process.
#[derive(Debug, Clone, Copy)]
struct Support {
    mode: Option<Mode>,
    skip_success: bool,
}

fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        let none = Support {
            mode: None,
            skip_success: false,
        };
        let Ok(ring) = IoUring::new(2) else {
            return none;
        };
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_err() {
            return none;
        }
        let needed = [
            opcode::OpenAt::CODE,
            opcode::Close::CODE,
            opcode::Read::CODE,
            opcode::Write::CODE,
            opcode::Fsync::CODE,
        ];
        if !needed.iter().all(|&code| probe.is_supported(code)) {
            return none;
        }
        let params = ring.params();
        Support {
            mode: Some(if params.is_feature_linked_file() {
                Mode::Direct
            } else {
                Mode::Plain
            }),
            skip_success: params.is_feature_skip_cqe_on_success(),
        }
    })
}

/// The mode whole-file runs use here, `None` when the kernel lacks OPENAT or CLOSE.
pub fn mode() -> Option<Mode> {
    support().mode
}

/// A thread's private ring for whole-file runs, kept between runs (SINGLE_ISSUER ties
/// it to the thread that made it).
pub struct FilesRing {
    ring: IoUring,
    /// Direct-descriptor slots registered; 0 in plain mode.
    table: u32,
    /// Slots the SQ and CQ are sized for.
    capacity: u32,
    /// Read slots, allocated on first use.
    buffer: Vec<u8>,
    generation: u64,
}

thread_local! {
    static CACHED: RefCell<Option<FilesRing>> = const { RefCell::new(None) };
}

impl FilesRing {
    /// This thread's cached ring if it fits `slots` (a run nested in a callback, or a
    /// forked child, gets a new one), else a new ring.
    pub fn take(slots: u32, tuning: Tuning) -> io::Result<FilesRing> {
        let cached = CACHED.with(|c| c.borrow_mut().take());
        let generation = fork_generation();
        let want_table = !tuning.plain && support().mode == Some(Mode::Direct);
        match cached {
            Some(r)
                if r.generation == generation
                    && r.capacity >= slots
                    && (r.table >= slots || !want_table) =>
            {
                Ok(r)
            }
            _ => FilesRing::new(slots, want_table, generation),
        }
    }

    fn new(slots: u32, want_table: bool, generation: u64) -> io::Result<FilesRing> {
        // At most 4 SQEs and 4 CQEs per slot: the SQ and CQ never overflow.
        let ring = private_ring(4 * slots.next_power_of_two())?;
        let table = if want_table && register_table(&ring, slots) {
            slots
        } else {
            0
        };
        Ok(FilesRing {
            ring,
            table,
            capacity: slots,
            buffer: Vec::new(),
            generation,
        })
    }

    /// How many slots (files in flight) the ring is sized for.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Keeps the ring for this thread's next run.
    pub fn put(self) {
        CACHED.with(|c| *c.borrow_mut() = Some(self));
    }

    /// Makes `buffer` hold `slots * size` bytes (untouched pages cost nothing).
    pub fn read_buffer(&mut self, slots: u32, size: usize) -> *mut u8 {
        let len = slots as usize * size;
        if self.buffer.len() < len {
            self.buffer = vec![0; len];
        }
        self.buffer.as_mut_ptr()
    }
}

/// Registers an empty table of `slots` direct descriptors (sparse where the kernel can,
/// 5.19+; an array of -1 before).
fn register_table(ring: &IoUring, slots: u32) -> bool {
    let submitter = ring.submitter();
    submitter.register_files_sparse(slots).is_ok()
        || submitter.register_files(&vec![-1; slots as usize]).is_ok()
}

/// The slots of a thread's ring: the window, within the direct-descriptor table's limit
/// (`RLIMIT_NOFILE`, which also bounds plain descriptors). A run uses at most one per
/// file.
pub fn slots_for(tuning: Tuning) -> u32 {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) } == 0 {
        rlim.rlim_cur.min(u64::from(u32::MAX)) as u32
    } else {
        u32::MAX
    };
    tuning.window.min(limit).clamp(1, 4096)
}

/// One file's chain: its index and what each stage returned. Stages that never ran keep
/// 0 (success); the kernel reports a cancelled stage as `-ECANCELED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slot {
    pub file: usize,
    /// The plain descriptor (plain mode), or -errno of a failed OPENAT.
    pub open: i32,
    pub data: i32,
    pub extra: i32,
    pub close: i32,
}

impl Slot {
    /// The first error of the OPENAT and the data request, as -errno.
    pub fn error(&self) -> Option<i32> {
        [self.open, self.data].into_iter().find(|&r| r < 0)
    }

    /// Also the extra request's (FSYNC) and the CLOSE's errors, as a write counts them.
    pub fn write_error(&self) -> Option<i32> {
        self.error()
            .or((self.extra < 0).then_some(self.extra))
            .or((self.close < 0 && self.close != -libc::ECANCELED).then_some(self.close))
    }
}

/// What a run does with each file once it is open.
pub trait Job {
    /// Whether a file must wait while the same path is in flight (writes: the last one
    /// given wins, as in a loop; chains in io-wq workers could otherwise interleave).
    const EXCLUSIVE: bool;
    /// OPENAT flags (without O_CLOEXEC) and mode.
    fn open_how(&self) -> (i32, u32);
    /// The data request for `file` in `slot`.
    fn data(&self, slot: u32, file: usize, target: Target) -> squeue::Entry;
    /// The request between it and the CLOSE, if any.
    fn extra(&self, slot: u32, file: usize, target: Target) -> Option<squeue::Entry>;
}

/// Where a chain's requests point: a direct descriptor or a plain one.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Fixed(u32),
    Fd(RawFd),
}

/// A sliding window of chains on a private ring. Dropping it cancels and reaps whatever
/// is still in the kernel, so no buffer is released under a request.
pub struct Run<'a, J: Job> {
    ring: &'a mut FilesRing,
    job: &'a J,
    paths: &'a Paths,
    dir_fd: RawFd,
    mode: Mode,
    skip_success: bool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Files refused with EMFILE/ENFILE while others were open (plain mode): retried
    /// once a slot frees up, with the window shrunk to what fitted.
    retry: Vec<usize>,
    /// Paths in flight, for exclusive jobs.
    busy: HashSet<&'a CStr>,
    cap: usize,
    next: usize,
    live: usize,
    aborted: bool,
    /// A direct slot may still hold a file (a CLOSE was cancelled or failed).
    dirty: bool,
    sliced: bool,
}

impl<'a, J: Job> Run<'a, J> {
    pub fn new(
        ring: &'a mut FilesRing,
        job: &'a J,
        paths: &'a Paths,
        dir_fd: RawFd,
        slots: u32,
        tuning: Tuning,
    ) -> Self {
        let support = support();
        let mode = if ring.table >= slots && !tuning.plain {
            Mode::Direct
        } else {
            Mode::Plain
        };
        let sliced = ring.ring.params().is_feature_ext_arg();
        Run {
            ring,
            job,
            paths,
            dir_fd,
            mode,
            skip_success: support.skip_success,
            slots: vec![Slot::default(); slots as usize],
            free: (0..slots).rev().collect(),
            retry: Vec::new(),
            busy: HashSet::new(),
            cap: slots as usize,
            next: 0,
            live: 0,
            aborted: false,
            dirty: false,
            sliced,
        }
    }

    /// True once every file was handed out and every chain has finished.
    fn idle(&self) -> bool {
        self.live == 0 && (self.aborted || (self.next == self.paths.len() && self.retry.is_empty()))
    }

    pub fn slot(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize]
    }

    /// Starts chains for the next files while slots are free. An exclusive job's file
    /// whose path is in flight waits (and the files after it) until that chain is done.
    fn refill(&mut self) {
        while !self.aborted && self.live < self.cap {
            let file = match self.retry.last() {
                Some(&file) => file,
                None if self.next < self.paths.len() => self.next,
                None => return,
            };
            if J::EXCLUSIVE && !self.busy.insert(self.paths.get(file)) {
                return;
            }
            if self.retry.pop().is_none() {
                self.next += 1;
            }
            let slot = self.free.pop().expect("live < cap <= slots");
            self.slots[slot as usize] = Slot {
                file,
                ..Slot::default()
            };
            self.live += 1;
            self.push_open(slot, file);
        }
    }

    fn push_open(&mut self, slot: u32, file: usize) {
        let (flags, mode) = self.job.open_how();
        let open = opcode::OpenAt::new(types::Fd(self.dir_fd), self.paths.ptr(file))
            .flags(flags | libc::O_CLOEXEC)
            .mode(mode);
        let id = u64::from(slot) << 2;
        if self.mode == Mode::Plain {
            self.push(&[open.build().user_data(id | OPEN)]);
            return;
        }
        // Direct descriptors refuse O_CLOEXEC (they are not in the fd table anyway).
        let dest = types::DestinationSlot::try_from_slot_target(slot).expect("slot < 4096");
        let mut flags_open = squeue::Flags::IO_LINK;
        if self.skip_success {
            flags_open |= squeue::Flags::SKIP_SUCCESS;
        }
        let open = opcode::OpenAt::new(types::Fd(self.dir_fd), self.paths.ptr(file))
            .flags(flags)
            .mode(mode)
            .file_index(Some(dest))
            .build()
            .flags(flags_open)
            .user_data(id | OPEN);
        self.push_rest(slot, file, Target::Fixed(slot), Some(open));
    }

    /// Pushes `[open ->] data -> [extra ->] close` for `slot`.
    fn push_rest(&mut self, slot: u32, file: usize, target: Target, open: Option<squeue::Entry>) {
        let id = u64::from(slot) << 2;
        let link = squeue::Flags::IO_HARDLINK;
        let data = self
            .job
            .data(slot, file, target)
            .flags(link)
            .user_data(id | DATA);
        let extra = self
            .job
            .extra(slot, file, target)
            .map(|e| e.flags(link).user_data(id | EXTRA));
        let close = match target {
            Target::Fixed(s) => opcode::Close::new(types::Fixed(s)).build(),
            Target::Fd(fd) => opcode::Close::new(types::Fd(fd)).build(),
        }
        .user_data(id | CLOSE);
        let mut chain = [close.clone(), close.clone(), close.clone(), close];
        let mut n = 0;
        for entry in open.into_iter().chain([data]).chain(extra) {
            chain[n] = entry;
            n += 1;
        }
        self.push(&chain[..=n]);
    }

    fn push(&mut self, entries: &[squeue::Entry]) {
        // SAFETY: every pointer in the chain (path, buffer) stays valid until the run has
        // reaped the chain's last completion (Drop cancels and reaps). The SQ holds 4
        // entries per slot and is submitted before every wait, so it has room.
        unsafe { self.ring.ring.submission().push_multiple(entries) }
            .expect("the SQ is sized for 4 entries per slot");
    }

    /// One round: refills the window, waits, and puts the slots whose chain finished in
    /// `done`. `Ok(false)` once every file is done; a failed wait aborts the run.
    pub fn step(&mut self, done: &mut Vec<u32>) -> io::Result<bool> {
        self.refill();
        if self.idle() {
            return Ok(false);
        }
        if let Err(e) = self.wait() {
            self.abort();
            return Err(e);
        }
        done.clear();
        self.reap(done);
        Ok(true)
    }

    /// Submits what is queued and waits up to 100 ms for the chains of about half the
    /// files in flight to finish (at least one completion each): with DEFER_TASKRUN the
    /// kernel runs the chains' linked requests while we wait, a few at a time, so asking
    /// for one completion would cost an `io_uring_enter` per few files.
    fn wait(&mut self) -> io::Result<()> {
        let slice = types::Timespec::from(CHECK_EVERY);
        let args = types::SubmitArgs::new().timespec(&slice);
        let want = (self.live / 2).max(1);
        let submitter = self.ring.ring.submitter();
        let waited = if self.sliced {
            submitter.submit_with_args(want, &args)
        } else {
            submitter.submit_and_wait(1)
        };
        match waited {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => {
                // Out of kernel memory for requests, or completions to reap first.
                std::thread::sleep(Duration::from_millis(1));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes every completion; appends the slots whose chain finished to `done`.
    fn reap(&mut self, done: &mut Vec<u32>) {
        let mut cqes = Vec::new();
        self.ring
            .ring
            .completion()
            .for_each(|c| cqes.push((c.user_data(), c.result())));
        for (ud, res) in cqes {
            let (slot, stage) = ((ud >> 2) as u32, ud & 3);
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue; // the cancel request's own completion
            };
            match stage {
                OPEN => {
                    s.open = res;
                    if self.mode == Mode::Plain {
                        self.opened(slot, res, done);
                    } else if self.skip_success && res < 0 {
                        // A failed CQE_SKIP_SUCCESS request posts its CQE and the rest
                        // of its link none (Linux 5.17's definition of the flag).
                        done.push(slot);
                    }
                }
                DATA => s.data = res,
                EXTRA => s.extra = res,
                _ => {
                    s.close = res;
                    if self.mode == Mode::Direct && res < 0 && s.open >= 0 {
                        self.dirty = true; // the file may still sit in the slot
                    }
                    if self.mode == Mode::Plain && res == -libc::ECANCELED {
                        // SAFETY: our own descriptor, which the cancelled CLOSE left open.
                        unsafe { libc::close(s.open) };
                    }
                    done.push(slot);
                }
            }
        }
    }

    /// Plain mode: OPENAT completed with `res`.
    fn opened(&mut self, slot: u32, res: i32, done: &mut Vec<u32>) {
        let file = self.slots[slot as usize].file;
        if res >= 0 && self.aborted {
            // SAFETY: the descriptor the kernel just gave us; nothing else uses it.
            unsafe { libc::close(res) };
            self.slots[slot as usize].open = -libc::ECANCELED;
            done.push(slot);
        } else if res >= 0 {
            self.push_rest(slot, file, Target::Fd(res), None);
        } else if matches!(-res, libc::EMFILE | libc::ENFILE) && self.live > 1 && !self.aborted {
            // Out of descriptors while others are open: retry it when one closes, and
            // keep fewer files in flight from now on.
            self.retry.push(file);
            self.cap = (self.live - 1).max(1);
            self.release_slot(slot);
        } else {
            done.push(slot);
        }
    }

    /// Frees the slots of finished chains for reuse.
    pub fn release(&mut self, done: &[u32]) {
        for &slot in done {
            self.release_slot(slot);
        }
    }

    fn release_slot(&mut self, slot: u32) {
        if J::EXCLUSIVE {
            self.busy
                .remove(self.paths.get(self.slots[slot as usize].file));
        }
        self.free.push(slot);
        self.live -= 1;
    }

    /// Stops the run: no new chains; cancels what the kernel holds and reaps until
    /// nothing is left. Finished chains' results are dropped. The cancel is repeated on
    /// every round: a hardlinked request starts once its predecessor was cancelled and
    /// may block in turn (a read on a FIFO without a writer).
    pub fn abort(&mut self) {
        self.aborted = true;
        let mut done = Vec::new();
        while self.live > 0 {
            let _ = self.ring.ring.submit();
            cancel_private(&mut self.ring.ring);
            if self.wait().is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
            done.clear();
            self.reap(&mut done);
            self.release(&done);
        }
    }
}

impl<J: Job> Drop for Run<'_, J> {
    fn drop(&mut self) {
        self.abort();
        if self.dirty && self.ring.table > 0 {
            // Close whatever a cancelled CLOSE left in the table.
            let empty = vec![-1; self.ring.table as usize];
            let _ = self.ring.ring.submitter().register_files_update(0, &empty);
        }
    }
}

/// Calls the caller's check about every 100 ms.
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// True (and restarts) when the last check is 100 ms old.
    pub fn due(&mut self) -> bool {
        if self.0.elapsed() >= CHECK_EVERY {
            self.0 = Instant::now();
            true
        } else {
            false
        }
    }
}
