//! Reused buffers for the first read of `_prepare_read_file` groups.
//!
//! A fresh 64 KiB buffer per file costs more than the file: the allocator returns it to
//! the kernel when it is freed (the heap top is trimmed) and the next file's read
//! page-faults it back in (measured: 21 us a file instead of 12 on W2). The result is a
//! copy of the bytes read into a `bytes` of their exact size either way, so the buffer
//! can be reused; a few dozen stay in a free list per queue.

use std::sync::{Arc, Mutex};

/// Buffers kept for reuse per queue (more in flight at once are allocated and freed).
const KEEP: usize = 128;

/// A free list of read buffers, shared by a queue and its buffers in flight.
#[derive(Default, Clone)]
pub struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

/// A buffer of the pool: back to the free list when dropped (in any thread).
pub struct Pooled {
    buf: Vec<u8>,
    pool: Pool,
}

impl Pool {
    /// A buffer of exactly `len` bytes (initialized: zeros or an earlier file's bytes).
    /// A free buffer of another size is dropped: the list follows the size in use.
    pub fn take(&self, len: usize) -> Pooled {
        let reused = self
            .0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .filter(|b| b.len() == len);
        Pooled {
            buf: reused.unwrap_or_else(|| vec![0; len]),
            pool: self.clone(),
        }
    }
}

impl Pooled {
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock() {
            if free.len() < KEEP {
                free.push(std::mem::take(&mut self.buf));
            }
        }
    }
}
