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

    /// The paths cut into `parts` runs of consecutive paths (sizes differing by at most
    /// one; none empty unless `self` is), each with the index of its first path.
    pub fn split(&self, parts: usize) -> Vec<(usize, Paths)> {
        let parts = parts.clamp(1, self.len().max(1));
        let (each, extra) = (self.len() / parts, self.len() % parts);
        let mut out = Vec::with_capacity(parts);
        let mut start = 0;
        for k in 0..parts {
            let n = each + usize::from(k < extra);
            let mut part = Paths::with_capacity(n);
            for i in start..start + n {
                part.push(self.get(i).to_bytes())
                    .expect("no NUL: pushed once already");
            }
            out.push((start, part));
            start += n;
        }
        out
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

    #[test]
    fn split_keeps_order_and_balance() {
        let mut p = Paths::with_capacity(7);
        for i in 0..7u8 {
            p.push(&[b'a' + i]).unwrap();
        }
        let parts = p.split(3);
        assert_eq!(
            parts.iter().map(|(s, q)| (*s, q.len())).collect::<Vec<_>>(),
            [(0, 3), (3, 2), (5, 2)]
        );
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|(_, q)| {
                (0..q.len())
                    .map(|i| q.get(i).to_bytes()[0])
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(joined, b"abcdefg");
        assert_eq!(p.split(100).len(), 7);
        assert_eq!(Paths::default().split(4).len(), 1);
    }
}
