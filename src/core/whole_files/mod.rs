//! Whole files: `read_files` / `write_files` on a private ring, one linked chain per file
//! (see [`engine`] for the chain), a sliding window of files in flight, and synchronous
//! follow-ups for the rare file larger than its first read or cut short by a write.
//!
//! Reads hand results to a [`ReadSink`] in batches, each a slice of the slot buffer the
//! kernel filled, valid only during the call: the binding copies them into `bytes`
//! objects of their exact size with the GIL held once per batch.

mod engine;
mod follow_up;
mod paths;
#[cfg(test)]
mod tests;

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::batch::BatchError;
pub use engine::{mode, Mode, Tuning};
use engine::{Clock, FilesRing, Job, Run, Slot, Target};
pub use paths::{EmbeddedNul, Paths};

/// The caller's periodic check (signals); its error ends the run.
pub trait Check {
    type Error;
    fn check(&mut self) -> Result<(), Self::Error>;
}

/// A closure as a [`Check`].
pub struct CheckFn<F>(pub F);

impl<E, F: FnMut() -> Result<(), E>> Check for CheckFn<F> {
    type Error = E;
    fn check(&mut self) -> Result<(), E> {
        (self.0)()
    }
}

/// One file's result: its content, or the errno that failed it.
#[derive(Debug)]
pub struct Finished<'a> {
    pub index: usize,
    pub result: Result<&'a [u8], i32>,
}

/// Where `read_files` puts results. Every file gets exactly one `deliver` entry or one
/// `finish` call, unless the run ends early with an error.
pub trait ReadSink: Check {
    /// A buffer the sink owns, filled by a follow-up read without the caller's lock.
    type Big;
    /// Files done since the last call, in completion order; the slices are valid only
    /// during the call.
    fn deliver(&mut self, files: &[Finished<'_>]) -> Result<(), Self::Error>;
    /// A buffer of `len` bytes for a large file.
    fn alloc(&mut self, len: usize) -> Result<Self::Big, Self::Error>;
    fn as_mut_ptr(big: &mut Self::Big) -> *mut u8;
    /// File `index` is `big[..filled]` followed by `tail`.
    fn finish(
        &mut self,
        index: usize,
        big: Option<Self::Big>,
        filled: usize,
        tail: &[u8],
    ) -> Result<(), Self::Error>;
}

/// The slots a run uses: one per file, at most the ring's.
fn run_slots(ring: &FilesRing, paths: &Paths) -> u32 {
    ring.capacity()
        .min(u32::try_from(paths.len()).unwrap_or(u32::MAX))
}

/// Reads every file of `paths` (relative ones against `dir_fd`, e.g. `AT_FDCWD`) whole.
///
/// Runs with at most `tuning.window` files in flight, calls `sink.check()` about every
/// 100 ms and ends early (cancelling and reaping whatever the kernel holds) when it or
/// the sink fails. Never returns while the kernel may still write into a buffer.
pub fn read_files<S: ReadSink>(
    dir_fd: RawFd,
    paths: &Paths,
    tuning: Tuning,
    sink: &mut S,
) -> Result<(), BatchError<S::Error>> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut ring = FilesRing::take(engine::slots_for(tuning), tuning).map_err(BatchError::Os)?;
    let slots = run_slots(&ring, paths);
    let size = tuning.buffer.clamp(1, u32::MAX as usize - PROBE_ROOM);
    let job = ReadJob {
        base: ring.read_buffer(slots, size + PROBE_ROOM),
        size,
    };
    let result = drive_reads(&mut ring, &job, paths, dir_fd, slots, tuning, sink);
    ring.put();
    result
}

fn drive_reads<S: ReadSink>(
    ring: &mut FilesRing,
    job: &ReadJob,
    paths: &Paths,
    dir_fd: RawFd,
    slots: u32,
    tuning: Tuning,
    sink: &mut S,
) -> Result<(), BatchError<S::Error>> {
    let mut run = Run::new(ring, job, paths, dir_fd, slots, tuning);
    let mut big = Vec::new();
    drive(&mut run, sink, |run, done, sink, clock| {
        let files: Vec<Finished<'_>> = done
            .iter()
            .filter_map(|&slot| job.outcome(slot, run.slot(slot), &mut big))
            .collect();
        if !files.is_empty() {
            sink.deliver(&files)?;
        }
        for file in big.drain(..) {
            follow_up::read_whole(dir_fd, paths.get(file), file, sink, clock)?;
        }
        Ok(())
    })
}

/// Runs `run` to its end: after each wait, `handle` gets the slots whose chains finished
/// (before they are reused), and the caller's check runs about every 100 ms. An error of
/// either ends the run early (whatever the kernel holds is cancelled and reaped).
fn drive<J: Job, C: Check>(
    run: &mut Run<'_, J>,
    check: &mut C,
    mut handle: impl FnMut(&Run<'_, J>, &[u32], &mut C, &mut Clock) -> Result<(), C::Error>,
) -> Result<(), BatchError<C::Error>> {
    let mut clock = Clock::new();
    let mut done = Vec::new();
    while run.step(&mut done).map_err(BatchError::Os)? {
        let mut outcome = handle(run, &done, check, &mut clock);
        run.release(&done);
        if outcome.is_ok() && clock.due() {
            outcome = check.check();
        }
        if let Err(e) = outcome {
            run.abort();
            return Err(BatchError::Signal(e));
        }
    }
    Ok(())
}

/// Room after each read slot for its EOF probe (keeps the next slot cache-line aligned).
const PROBE_ROOM: usize = 64;

/// Reads: slot `s` reads up to `size` bytes at the file position into its slot,
/// `base[s*(size+PROBE_ROOM)..]`, then probes for EOF with a 1-byte read right after
/// it. A short read alone does not prove EOF: /proc's seq files return a page at a
/// time, pipes what they hold. A probe that finds more sends the file to the follow-up.
struct ReadJob {
    base: *mut u8,
    size: usize,
}

impl ReadJob {
    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: slot < slots, and the buffer holds `slots * (size + PROBE_ROOM)` bytes.
        unsafe { self.base.add(slot as usize * (self.size + PROBE_ROOM)) }
    }

    /// A finished chain's result; a file with more after its slot goes to `big` instead.
    fn outcome<'a>(&self, slot: u32, s: &Slot, big: &mut Vec<usize>) -> Option<Finished<'a>> {
        let result = match s.error() {
            Some(e) => Err(-e),
            None if s.extra != 0 => {
                big.push(s.file);
                return None;
            }
            // SAFETY: the chain is over (its CLOSE completed after both reads), so the
            // kernel no longer writes this slot; it is not reused before the slice dies.
            None => Ok(unsafe { std::slice::from_raw_parts(self.slot_ptr(slot), s.data as usize) }),
        };
        Some(Finished {
            index: s.file,
            result,
        })
    }
}

/// The file position (`-1`): the probe continues where the first read stopped.
const AT_POSITION: u64 = u64::MAX;

impl Job for ReadJob {
    const EXCLUSIVE: bool = false;

    fn open_how(&self) -> (i32, u32) {
        (libc::O_RDONLY, 0)
    }

    fn data(&self, slot: u32, _file: usize, target: Target) -> squeue::Entry {
        let (ptr, len) = (self.slot_ptr(slot), self.size as u32);
        match target {
            Target::Fixed(s) => opcode::Read::new(types::Fixed(s), ptr, len),
            Target::Fd(fd) => opcode::Read::new(types::Fd(fd), ptr, len),
        }
        .offset(AT_POSITION)
        .build()
    }

    fn extra(&self, slot: u32, _file: usize, target: Target) -> Option<squeue::Entry> {
        // SAFETY: the probe byte lies in the slot's PROBE_ROOM.
        let ptr = unsafe { self.slot_ptr(slot).add(self.size) };
        Some(
            match target {
                Target::Fixed(s) => opcode::Read::new(types::Fixed(s), ptr, 1),
                Target::Fd(fd) => opcode::Read::new(types::Fd(fd), ptr, 1),
            }
            .offset(AT_POSITION)
            .build(),
        )
    }
}

/// A buffer to write, kept alive and unchanged by the caller for the whole run.
#[derive(Debug, Clone, Copy)]
pub struct Data {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: only an address range; the caller keeps the memory pinned during the run.
unsafe impl Send for Data {}
unsafe impl Sync for Data {}

/// Creates or truncates each file of `paths` (mode `mode` before the umask) and writes
/// `data[i]` to it whole, fsyncing it first if `fsync`. Returns per file the bytes
/// written or -errno. Signals and early ends as for [`read_files`].
///
/// # Safety
/// Every `data[i]` must stay valid and unchanged for the whole call.
pub unsafe fn write_files<C: Check>(
    dir_fd: RawFd,
    paths: &Paths,
    data: &[Data],
    mode: u32,
    fsync: bool,
    tuning: Tuning,
    check: &mut C,
) -> Result<Vec<i64>, BatchError<C::Error>> {
    assert_eq!(paths.len(), data.len());
    let mut results = vec![0i64; paths.len()];
    if paths.is_empty() {
        return Ok(results);
    }
    let mut ring = FilesRing::take(engine::slots_for(tuning), tuning).map_err(BatchError::Os)?;
    let slots = run_slots(&ring, paths);
    let job = WriteJob { data, mode, fsync };
    let result = drive_writes(
        &mut ring,
        &job,
        paths,
        dir_fd,
        slots,
        tuning,
        check,
        &mut results,
    );
    ring.put();
    result.map(|()| results)
}

#[allow(clippy::too_many_arguments)]
fn drive_writes<C: Check>(
    ring: &mut FilesRing,
    job: &WriteJob<'_>,
    paths: &Paths,
    dir_fd: RawFd,
    slots: u32,
    tuning: Tuning,
    check: &mut C,
    results: &mut [i64],
) -> Result<(), BatchError<C::Error>> {
    let mut run = Run::new(ring, job, paths, dir_fd, slots, tuning);
    drive(&mut run, check, |run, done, check, clock| {
        for &slot in done {
            let s = run.slot(slot);
            let data = job.data[s.file];
            results[s.file] = match s.write_error() {
                Some(e) => i64::from(e),
                None if s.data as usize == data.len => data.len as i64,
                None => {
                    // Short, or capped at CHUNK: finish it on a new open.
                    // SAFETY: the caller keeps `data` valid for the call.
                    let bytes = unsafe { std::slice::from_raw_parts(data.ptr, data.len) };
                    let (path, from) = (paths.get(s.file), s.data as usize);
                    follow_up::write_rest(dir_fd, path, bytes, from, job.fsync, check, clock)?
                }
            };
        }
        Ok(())
    })
}

/// Writes: each chain writes its file's data (at most CHUNK bytes; the rest follows up).
struct WriteJob<'a> {
    data: &'a [Data],
    mode: u32,
    fsync: bool,
}

impl Job for WriteJob<'_> {
    const EXCLUSIVE: bool = true;

    fn open_how(&self) -> (i32, u32) {
        (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, self.mode)
    }

    fn data(&self, _slot: u32, file: usize, target: Target) -> squeue::Entry {
        let data = self.data[file];
        let len = data.len.min(follow_up::CHUNK) as u32;
        match target {
            Target::Fixed(s) => opcode::Write::new(types::Fixed(s), data.ptr, len).build(),
            Target::Fd(fd) => opcode::Write::new(types::Fd(fd), data.ptr, len).build(),
        }
    }

    fn extra(&self, _slot: u32, file: usize, target: Target) -> Option<squeue::Entry> {
        // A file longer than one chunk is synced by its follow-up, once it is whole.
        if !self.fsync || self.data[file].len > follow_up::CHUNK {
            return None;
        }
        Some(match target {
            Target::Fixed(s) => opcode::Fsync::new(types::Fixed(s)).build(),
            Target::Fd(fd) => opcode::Fsync::new(types::Fd(fd)).build(),
        })
    }
}
