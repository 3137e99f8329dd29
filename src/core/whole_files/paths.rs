//! Paths for a whole-file run, stored back to back as NUL-terminated byte strings: one
//! allocation for any number of files, and a stable `*const c_char` per path for the
//! kernel's OPENAT while the run lasts.

use std::ffi::{c_char, CStr};

/// A path contained a NUL byte (Python's `open` raises `ValueError` for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedNul;

/// The paths of one run, in input order.
#[derive(Debug, Default, Clone)]
pub struct Paths {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Paths {
    pub fn with_capacity(files: usize) -> Paths {
        Paths {
            bytes: Vec::with_capacity(files * 32),
            starts: Vec::with_capacity(files),
        }
    }

    /// Appends one path (its bytes, without a terminator).
    pub fn push(&mut self, path: &[u8]) -> Result<(), EmbeddedNul> {
        if path.contains(&0) {
            return Err(EmbeddedNul);
        }
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(path);
        self.bytes.push(0);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Path `i` with its terminator.
    pub fn get(&self, i: usize) -> &CStr {
        let start = self.starts[i];
        let end = self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        CStr::from_bytes_with_nul(&self.bytes[start..end]).expect("pushed with one terminator")
    }

    /// Address of path `i`, valid while `self` is neither moved from nor mutated.
    pub fn ptr(&self, i: usize) -> *const c_char {
        self.get(i).as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_refuse_nul() {
        let mut p = Paths::with_capacity(2);
        p.push(b"a/b").unwrap();
        p.push(b"").unwrap();
        p.push(b"\xff\xfe").unwrap();
        assert_eq!(p.push(b"x\0y"), Err(EmbeddedNul));
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(0).to_bytes(), b"a/b");
        assert_eq!(p.get(1).to_bytes(), b"");
        assert_eq!(p.get(2).to_bytes(), b"\xff\xfe");
    }
}
