//! A regular file's rest, read at once from the page cache or not at all: `preadv2` with
//! `RWF_NOWAIT` (Linux 4.14+), which never waits for the disk. `uringq.aio` reads a small
//! file this way when its task asks for it right after opening it, so the read is made
//! when it is asked for (it sees every write made before it, mapped stores included) and
//! costs no loop turn.

/// The alignment below which the page cache never splits a file (the smallest page).
const PAGE: u64 = 4096;

/// Reads the file `fd` from `offset` into the `len` bytes at `ptr`, without blocking,
/// and tells whether they are exactly the rest of the file: `true` when the file ends
/// `len` bytes after `offset` and every byte was read. `false` when that cannot be told
/// without waiting or is not so: the data is not all in the page cache (EAGAIN, or a
/// short read of a partly cached range), the file system has no such reads (EOPNOTSUPP),
/// any other error (left for a real read to report), the file is longer or shorter, or
/// `len` is 0. The bytes at `ptr` are then partly written, or not at all.
///
/// EOF is told by asking for one byte more: when it does not come and lies in the page
/// of the last byte that came, the kernel had that page and stopped at the file's size;
/// only at a page boundary does a second one-byte read ask.
///
/// Meant for a regular file: a device that takes offsets reads as with any read.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
pub unsafe fn read_rest(fd: i32, offset: u64, ptr: *mut u8, len: usize) -> bool {
    let Ok(start) = libc::off_t::try_from(offset) else {
        return false;
    };
    let Some(end) = offset.checked_add(len as u64) else {
        return false;
    };
    if len == 0 || libc::off_t::try_from(end).is_err() {
        return false;
    }
    let mut past = 0u8;
    let iov = [
        libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        },
        libc::iovec {
            iov_base: (&raw mut past).cast(),
            iov_len: 1,
        },
    ];
    // SAFETY: both iovecs point to memory valid for writes of their lengths (the caller's
    // `len` bytes, and `past`).
    let n = unsafe { libc::preadv2(fd, iov.as_ptr(), 2, start, libc::RWF_NOWAIT) };
    if n < 0 || n as usize != len {
        return false;
    }
    if end % PAGE != 0 {
        return true;
    }
    // SAFETY: one byte into `past`.
    let more = unsafe {
        libc::preadv2(
            fd,
            iov[1..].as_ptr(),
            1,
            end as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    more == 0
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::core::testing::data_file;

    fn rest(f: &std::fs::File, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` holds `len` bytes; `f` is a regular file.
        unsafe { read_rest(f.as_raw_fd(), offset, buf.as_mut_ptr(), len) }.then_some(buf)
    }

    fn expected(from: usize, to: usize) -> Vec<u8> {
        (from..to).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_exactly_the_rest_of_a_cached_file() {
        for size in [1, 100, 4095, 4096, 4097, 8192, 12_000, 65_536] {
            let (_dir, f) = data_file(size);
            assert_eq!(rest(&f, 0, size), Some(expected(0, size)), "{size}");
            let from = size / 3;
            if from < size {
                assert_eq!(
                    rest(&f, from as u64, size - from),
                    Some(expected(from, size))
                );
            }
        }
    }

    #[test]
    fn a_file_longer_or_shorter_than_asked_is_not_its_rest() {
        for size in [100, 4096, 8192, 9000] {
            let (_dir, f) = data_file(size);
            assert_eq!(rest(&f, 0, size - 1), None, "{size}: longer");
            assert_eq!(rest(&f, 0, size + 1), None, "{size}: shorter");
            assert_eq!(rest(&f, size as u64, 1), None, "{size}: at EOF");
            assert_eq!(rest(&f, 0, 0), None);
        }
    }

    #[test]
    fn a_file_grown_by_one_byte_at_a_page_boundary_is_seen() {
        let (_dir, f) = data_file(4096);
        assert!(rest(&f, 0, 4096).is_some());
        f.write_all_at(b"y", 4096).unwrap();
        assert_eq!(rest(&f, 0, 4096), None);
        assert_eq!(rest(&f, 0, 4097).map(|all| all[4096]), Some(b'y'));
    }

    #[test]
    fn what_is_not_a_file_or_out_of_range_reads_nothing() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two ends.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut buf = [0u8; 8];
        // SAFETY: `buf` holds 8 bytes; a pipe is refused (ESPIPE) before any read.
        assert!(!unsafe { read_rest(fds[0], 0, buf.as_mut_ptr(), 8) });
        // SAFETY: as above; -1 is no fd (EBADF).
        assert!(!unsafe { read_rest(-1, 0, buf.as_mut_ptr(), 8) });
        let (_dir, f) = data_file(10);
        // SAFETY: as above; offsets past off_t's range never reach the kernel.
        assert!(!unsafe { read_rest(f.as_raw_fd(), u64::MAX - 4, buf.as_mut_ptr(), 8) });
        assert!(!unsafe { read_rest(f.as_raw_fd(), 1 << 63, buf.as_mut_ptr(), 8) });
        for fd in fds {
            // SAFETY: closing the pipe this test made.
            unsafe { libc::close(fd) };
        }
    }

    #[test]
    fn a_file_not_in_the_page_cache_reads_right_or_not_at_all() {
        let (_dir, f) = data_file(64 * 1024);
        f.sync_all().unwrap();
        let fd = f.as_raw_fd();
        // SAFETY: advice on a file this test owns.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        if resident_pages(&f, 64 * 1024) > 0 {
            return; // a file system that keeps them (tmpfs): nothing to test here
        }
        // The kernel may start readahead for the NOWAIT read and find it done (a fast
        // disk): the whole rest then, else nothing; never a part taken for the whole.
        let got = rest(&f, 0, 64 * 1024);
        assert!(got.is_none() || got == Some(expected(0, 64 * 1024)));
    }

    /// How many of the file's first `len` bytes' pages are in the page cache (`mincore`).
    fn resident_pages(f: &std::fs::File, len: usize) -> usize {
        let pages = len.div_ceil(PAGE as usize);
        let mut vec = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of `len` bytes of a file at least that long,
        // queried and unmapped here.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
            libc::munmap(map, len);
        }
        vec.iter().filter(|&&v| v & 1 != 0).count()
    }
}
