//! The registered-file table behind `register`/`deregister`. Each registered fd is
//! `dup`ed, so the open file stays reachable under its number even if the caller closes
//! and reuses it, and, where the kernel has sparse tables (5.19+), also placed in a fixed
//! slot so requests skip the per-request file lookup. An *adopted* fd (`adopt`: one the
//! queue's owner opened for itself and closes only after deregistering it) is used as it
//! is: no duplicate, no slot, no system call either way.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::IoUring;

use super::error::Error;
use super::ops::Target;

/// Fixed slots allocated up front (a sparse table costs nothing until used): for
/// registered fds and for the direct descriptors of grouped requests.
const FIXED_SLOTS: u32 = 1024;

#[derive(Debug)]
struct Registration {
    /// The private duplicate; `None` for an adopted fd (used under its own number).
    dup: Option<OwnedFd>,
    slot: Option<u32>,
    /// Requests on this fd whose completion has not been returned yet.
    users: usize,
}

/// Hashes an fd number with one multiplication: every request looks its fd up three
/// times, and the keys are small trusted integers, so SipHash's cost buys nothing.
#[derive(Default)]
struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, fd: i32) {
        // Fibonacci hashing spreads consecutive numbers over the high bits hashbrown uses.
        self.0 = u64::from(fd as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type FdMap<V> = HashMap<RawFd, V, BuildHasherDefault<FdHasher>>;

/// fd number (as the caller knows it) -> registration.
#[derive(Debug, Default)]
pub struct FileTable {
    by_fd: FdMap<Registration>,
    free_slots: Vec<u32>,
    /// The ring has a sparse fixed-file table (5.19+).
    sparse: bool,
}

impl FileTable {
    /// Creates the table and, if the kernel allows, a sparse fixed-file table in `io`.
    pub fn new(io: &IoUring) -> FileTable {
        let sparse = io.submitter().register_files_sparse(FIXED_SLOTS).is_ok();
        let free_slots = if sparse {
            (0..FIXED_SLOTS).rev().collect()
        } else {
            Vec::new()
        };
        FileTable {
            by_fd: FdMap::default(),
            free_slots,
            sparse,
        }
    }

    /// Registers `fd`; registering a registered fd again does nothing.
    pub fn register(&mut self, io: &IoUring, fd: RawFd) -> Result<(), Error> {
        if fd < 0 {
            return Err(Error::Invalid(format!("fd must be >= 0, got {fd}")));
        }
        if self.by_fd.contains_key(&fd) {
            return Ok(());
        }
        let dup = dup_cloexec(fd)?;
        let slot = self.free_slots.pop().and_then(|slot| {
            match io
                .submitter()
                .register_files_update(slot, &[dup.as_raw_fd()])
            {
                Ok(_) => Some(slot),
                Err(_) => {
                    self.free_slots.push(slot);
                    None
                }
            }
        });
        self.by_fd.insert(
            fd,
            Registration {
                dup: Some(dup),
                slot,
                users: 0,
            },
        );
        Ok(())
    }

    /// Registers `fd` as it is, without a duplicate or a fixed slot: for an fd whose
    /// owner keeps it open until it has deregistered it (a file object of `uringq.aio`
    /// and the fd it opened). Registering a registered fd again does nothing.
    pub fn adopt(&mut self, fd: RawFd) -> Result<(), Error> {
        if fd < 0 {
            return Err(Error::Invalid(format!("fd must be >= 0, got {fd}")));
        }
        self.by_fd.entry(fd).or_insert(Registration {
            dup: None,
            slot: None,
            users: 0,
        });
        Ok(())
    }

    /// Deregisters `fd`; refused while requests still use it.
    pub fn deregister(&mut self, io: &IoUring, fd: RawFd) -> Result<(), Error> {
        let reg = self.by_fd.get(&fd).ok_or(Error::NotRegistered(fd))?;
        if reg.users > 0 {
            return Err(Error::Busy(format!(
                "{} request(s) on fd {fd} are prepared or in flight",
                reg.users
            )));
        }
        let reg = self.by_fd.remove(&fd).expect("checked above");
        if let Some(slot) = reg.slot {
            // Clearing the slot drops the kernel's reference to the file.
            if io.submitter().register_files_update(slot, &[-1]).is_ok() {
                self.free_slots.push(slot);
            }
        }
        Ok(())
    }

    /// Where requests on `fd` go, or `NotRegistered`.
    pub fn target(&self, fd: RawFd) -> Result<Target, Error> {
        let reg = self.by_fd.get(&fd).ok_or(Error::NotRegistered(fd))?;
        Ok(match reg.slot {
            Some(slot) => Target::Fixed(slot),
            None => Target::Fd(reg.fd(fd)),
        })
    }

    /// The descriptor behind a registered fd: its private duplicate, or an adopted fd
    /// itself (for the batch engine's own ring).
    pub fn dup_of(&self, fd: RawFd) -> Result<RawFd, Error> {
        Ok(self.by_fd.get(&fd).ok_or(Error::NotRegistered(fd))?.fd(fd))
    }

    pub fn acquire(&mut self, fd: RawFd) {
        if let Some(reg) = self.by_fd.get_mut(&fd) {
            reg.users += 1;
        }
    }

    pub fn release(&mut self, fd: RawFd) {
        if let Some(reg) = self.by_fd.get_mut(&fd) {
            reg.users = reg.users.saturating_sub(1);
        }
    }

    /// True if the ring has a table for direct descriptors.
    pub fn has_slots(&self) -> bool {
        self.sparse
    }

    /// A free fixed slot for a direct descriptor, if any.
    pub fn alloc_slot(&mut self) -> Option<u32> {
        self.free_slots.pop()
    }

    /// Returns a slot whose direct descriptor was closed.
    pub fn free_slot(&mut self, slot: u32) {
        self.free_slots.push(slot);
    }

    /// Closes every duplicate (the ring's own table goes with the ring).
    pub fn clear(&mut self) {
        self.by_fd.clear();
        self.free_slots.clear();
    }
}

impl Registration {
    /// The descriptor requests use: the duplicate, or the adopted fd `number` itself.
    fn fd(&self, number: RawFd) -> RawFd {
        self.dup.as_ref().map_or(number, AsRawFd::as_raw_fd)
    }
}

fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a caller-supplied number; the result is checked.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}
