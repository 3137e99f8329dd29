//! Requests and the op table: each prepared or in-flight request owns a slot, keyed by the
//! id carried in the SQE's `user_data`, until its completion is handed back.

use io_uring::{opcode, squeue, types};

/// Largest transfer one request asks for; the kernel caps `read`/`write` here as well,
/// so a larger buffer simply completes short, as `pread` would.
pub const MAX_RW_COUNT: usize = 0x7fff_f000;

/// One request. The pointers inside stay valid as long as the caller's payload lives
/// (see [`Queue::prepare`](super::Queue::prepare)).
#[derive(Debug)]
pub enum Op {
    /// Read into `len` bytes at `ptr`.
    Read {
        ptr: *mut u8,
        len: usize,
        offset: u64,
    },
    /// Write `len` bytes from `ptr`.
    Write {
        ptr: *const u8,
        len: usize,
        offset: u64,
    },
    /// Scatter read into the buffers described by `iov`.
    Readv { iov: Vec<libc::iovec>, offset: u64 },
    /// Gather write from the buffers described by `iov`.
    Writev { iov: Vec<libc::iovec>, offset: u64 },
    /// `fsync`, or `fdatasync` when `datasync`.
    Fsync { datasync: bool },
}

// SAFETY: an Op is only a description of memory owned by the request's payload, which
// the queue keeps alive until the kernel is done; it is never dereferenced by us.
unsafe impl Send for Op {}

/// Where the SQE points: a fixed-file slot or a plain descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Fixed(u32),
    Fd(i32),
}

impl Op {
    /// Builds the SQE for this op. `iov` vectors must not move afterwards: their heap
    /// storage is what the kernel reads, and it stays put while the `Vec` is not touched.
    pub fn to_sqe(&self, target: Target) -> squeue::Entry {
        macro_rules! build {
            ($op:path, $($arg:expr),*) => {
                match target {
                    Target::Fixed(slot) => $op(types::Fixed(slot), $($arg),*),
                    Target::Fd(fd) => $op(types::Fd(fd), $($arg),*),
                }
            };
        }
        match self {
            Op::Read { ptr, len, offset } => build!(opcode::Read::new, *ptr, clamp_len(*len))
                .offset(*offset)
                .build(),
            Op::Write { ptr, len, offset } => build!(opcode::Write::new, *ptr, clamp_len(*len))
                .offset(*offset)
                .build(),
            Op::Readv { iov, offset } => build!(opcode::Readv::new, iov.as_ptr(), iov.len() as u32)
                .offset(*offset)
                .build(),
            Op::Writev { iov, offset } => {
                build!(opcode::Writev::new, iov.as_ptr(), iov.len() as u32)
                    .offset(*offset)
                    .build()
            }
            Op::Fsync { datasync } => {
                let flags = if *datasync {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                build!(opcode::Fsync::new,).flags(flags).build()
            }
        }
    }
}

fn clamp_len(len: usize) -> u32 {
    len.min(MAX_RW_COUNT) as u32
}

/// A request in the table: its op (which may own an iovec array), the registered fd it
/// uses and the caller's payload (buffer pins, user data).
#[derive(Debug)]
pub struct Entry<T> {
    pub op: Op,
    pub fd: i32,
    pub payload: T,
}

/// A slab of entries with a free list; the index is the SQE's `user_data`.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<Entry<T>>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slab<T> {
    pub fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `entry` and returns its id.
    pub fn insert(&mut self, entry: Entry<T>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(entry);
                id
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        }
    }

    /// Takes the entry out; `None` for an unknown or empty id.
    pub fn remove(&mut self, id: usize) -> Option<Entry<T>> {
        let entry = self.slots.get_mut(id)?.take()?;
        self.free.push(id);
        self.len -= 1;
        Some(entry)
    }

    pub fn get(&self, id: usize) -> Option<&Entry<T>> {
        self.slots.get(id)?.as_ref()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Visits every entry.
    pub fn for_each(&self, f: impl FnMut(&Entry<T>)) {
        self.slots.iter().flatten().for_each(f);
    }

    /// Removes and yields every entry.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry<T>> + '_ {
        self.free.clear();
        self.len = 0;
        self.slots.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry<u32> {
        Entry {
            op: Op::Fsync { datasync: false },
            fd: 0,
            payload: n,
        }
    }

    #[test]
    fn slab_reuses_freed_ids() {
        let mut slab = Slab::new();
        let a = slab.insert(entry(1));
        let b = slab.insert(entry(2));
        assert_ne!(a, b);
        assert_eq!(slab.remove(a).unwrap().payload, 1);
        assert!(slab.remove(a).is_none(), "an id is removed once");
        let c = slab.insert(entry(3));
        assert_eq!(c, a);
        assert_eq!(slab.len(), 2);
        let mut rest: Vec<u32> = slab.drain().map(|e| e.payload).collect();
        rest.sort();
        assert_eq!(rest, vec![2, 3]);
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn lengths_are_clamped_to_the_kernel_limit() {
        assert_eq!(clamp_len(usize::MAX), MAX_RW_COUNT as u32);
        assert_eq!(clamp_len(4096), 4096);
    }
}
