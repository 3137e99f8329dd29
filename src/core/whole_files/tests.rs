//! Tests of the whole-file engine against `std::fs` as the oracle, in both modes.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "uringq-whole-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, len: usize) -> PathBuf {
        let path = self.0.join(name);
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn paths_of(list: &[PathBuf]) -> Paths {
    let mut paths = Paths::with_capacity(list.len());
    for p in list {
        paths.push(p.as_os_str().as_encoded_bytes()).unwrap();
    }
    paths
}

/// Collects results as `Vec<u8>` or errno, checking each file is reported once.
#[derive(Default)]
struct Collect {
    results: Vec<Option<Result<Vec<u8>, i32>>>,
    checks: usize,
    fail_after: Option<usize>,
    /// Rewrites this file with this many bytes when a follow-up allocates its buffer:
    /// the file changes between its `fstat` and its read.
    resize_on_alloc: Option<(PathBuf, usize)>,
}

impl Collect {
    fn new(n: usize) -> Collect {
        Collect {
            results: vec![None; n],
            ..Collect::default()
        }
    }

    fn set(&mut self, index: usize, value: Result<Vec<u8>, i32>) {
        assert!(self.results[index].is_none(), "file {index} reported twice");
        self.results[index] = Some(value);
    }
}

impl Check for Collect {
    type Error = &'static str;
    fn check(&mut self) -> Result<(), &'static str> {
        self.checks += 1;
        match self.fail_after {
            Some(n) if self.checks > n => Err("interrupted"),
            _ => Ok(()),
        }
    }
}

impl ReadSink for Collect {
    type Big = Vec<u8>;

    fn deliver(&mut self, files: &[Finished<'_>]) -> Result<(), &'static str> {
        for f in files {
            self.set(f.index, f.result.map(<[u8]>::to_vec));
        }
        Ok(())
    }

    fn alloc(&mut self, len: usize) -> Result<Vec<u8>, &'static str> {
        if let Some((path, new_len)) = &self.resize_on_alloc {
            let data: Vec<u8> = (0..*new_len).map(|i| (i % 199) as u8).collect();
            std::fs::write(path, data).unwrap();
        }
        Ok(vec![0xAA; len])
    }

    fn as_mut_ptr(big: &mut Vec<u8>) -> *mut u8 {
        big.as_mut_ptr()
    }

    fn finish(
        &mut self,
        index: usize,
        big: Option<Vec<u8>>,
        filled: usize,
        tail: &[u8],
    ) -> Result<(), &'static str> {
        let mut data = big.unwrap_or_default();
        data.truncate(filled);
        data.extend_from_slice(tail);
        self.set(index, Ok(data));
        Ok(())
    }
}

fn oracle(path: &Path) -> Result<Vec<u8>, i32> {
    std::fs::read(path).map_err(|e| e.raw_os_error().unwrap())
}

fn read_all(list: &[PathBuf], tuning: Tuning) -> Vec<Result<Vec<u8>, i32>> {
    let mut sink = Collect::new(list.len());
    read_files(libc::AT_FDCWD, &paths_of(list), tuning, &mut sink).unwrap();
    sink.results
        .into_iter()
        .map(|r| r.expect("every file reported"))
        .collect()
}

fn tunings(window: u32, buffer: usize) -> [Tuning; 2] {
    let direct = Tuning {
        window,
        buffer,
        plain: false,
    };
    [
        direct,
        Tuning {
            plain: true,
            ..direct
        },
    ]
}

#[test]
fn reads_match_std_around_the_slot_size_in_both_modes() {
    let dir = TempDir::new("sizes");
    let buffer = 4096;
    let sizes = [
        0,
        1,
        100,
        buffer - 1,
        buffer,
        buffer + 1,
        3 * buffer + 5,
        1 << 20,
    ];
    let list: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| dir.file(&format!("f{i}"), n))
        .collect();
    for tuning in tunings(3, buffer) {
        let got = read_all(&list, tuning);
        for (path, got) in list.iter().zip(got) {
            assert_eq!(got, oracle(path), "{path:?} with {tuning:?}");
        }
    }
}

#[test]
fn errors_are_errno_per_file_and_the_rest_still_read() {
    let dir = TempDir::new("errors");
    let ok = dir.file("ok", 10);
    let missing = dir.0.join("missing");
    let not_dir = dir.0.join("ok").join("below");
    let long = dir.0.join("x".repeat(300));
    let list = vec![ok.clone(), missing, dir.0.clone(), not_dir, long, ok];
    for tuning in tunings(2, 64) {
        let got = read_all(&list, tuning);
        let errors: Vec<Option<i32>> = got.iter().map(|r| r.as_ref().err().copied()).collect();
        assert_eq!(
            errors,
            [
                None,
                Some(libc::ENOENT),
                Some(libc::EISDIR),
                Some(libc::ENOTDIR),
                Some(libc::ENAMETOOLONG),
                None
            ],
            "{tuning:?}"
        );
        assert_eq!(got[0], oracle(&list[0]));
        assert_eq!(got[5], got[0]);
    }
}

#[test]
fn slots_are_reused_across_many_files_and_duplicates() {
    let dir = TempDir::new("reuse");
    let list: Vec<PathBuf> = (0..300)
        .map(|i| dir.file(&format!("f{i}"), (i * 37) % 900))
        .chain(std::iter::repeat_n(dir.0.join("f7"), 20))
        .collect();
    for tuning in tunings(4, 512) {
        let got = read_all(&list, tuning);
        for (path, got) in list.iter().zip(got) {
            assert_eq!(got, oracle(path), "{path:?}");
        }
    }
}

#[test]
fn proc_files_are_read_to_eof_not_to_the_first_short_read() {
    // /proc's seq files come a page per read: a short read is not EOF.
    let list = vec![PathBuf::from("/proc/self/smaps")];
    for tuning in tunings(1, 64 * 1024) {
        let got = read_all(&list, tuning).remove(0).unwrap();
        let lines = got.split(|&b| b == b'\n').count();
        assert!(got.len() > 4096 && lines > 20, "{} bytes", got.len());
        assert_eq!(got.last(), Some(&b'\n'));
    }
}

#[test]
fn an_empty_list_reads_nothing() {
    let mut sink = Collect::new(0);
    read_files(
        libc::AT_FDCWD,
        &Paths::default(),
        Tuning::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(sink.checks, 0);
}

#[test]
fn relative_paths_resolve_against_dir_fd() {
    let dir = TempDir::new("dirfd");
    dir.file("rel", 33);
    let c = CString::new(dir.0.as_os_str().as_encoded_bytes()).unwrap();
    let dfd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(dfd >= 0);
    let mut paths = Paths::default();
    paths.push(b"rel").unwrap();
    let mut sink = Collect::new(1);
    read_files(dfd, &paths, Tuning::default(), &mut sink).unwrap();
    assert_eq!(sink.results[0], Some(oracle(&dir.0.join("rel"))));
    unsafe { libc::close(dfd) };
}

#[test]
fn a_failing_check_ends_a_run_stuck_on_a_fifo() {
    // Opening a FIFO without a writer blocks (in an io-wq worker); the run must still
    // end soon after the caller's check fails, cancelling the open.
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("fifo");
    let c = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for tuning in tunings(4, 64) {
        let list = vec![dir.file("ok", 5), fifo.clone()];
        let mut sink = Collect::new(list.len());
        sink.fail_after = Some(1);
        let start = Instant::now();
        let res = read_files(libc::AT_FDCWD, &paths_of(&list), tuning, &mut sink);
        assert!(
            matches!(res, Err(BatchError::Signal("interrupted"))),
            "{tuning:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // The cached ring is still usable afterwards.
        assert_eq!(read_all(&list[..1], tuning)[0], oracle(&list[0]));
    }
}

/// `write_files` of `payloads` to `targets` with an always-passing check.
fn write_all(targets: &[PathBuf], payloads: &[&[u8]], fsync: bool, tuning: Tuning) -> Vec<i64> {
    let data: Vec<Data> = payloads
        .iter()
        .map(|p| Data {
            ptr: p.as_ptr(),
            len: p.len(),
        })
        .collect();
    let mut check = CheckFn(|| Ok::<(), ()>(()));
    // SAFETY: `payloads` outlive the call.
    unsafe {
        write_files(
            libc::AT_FDCWD,
            &paths_of(targets),
            &data,
            0o640,
            fsync,
            tuning,
            &mut check,
        )
    }
    .unwrap()
}

#[test]
fn writes_create_truncate_and_report_errors() {
    let dir = TempDir::new("writes");
    let existing = dir.file("existing", 5000);
    let targets = [
        dir.0.join("new"),
        existing,
        dir.0.join("no-such-dir").join("x"),
        dir.0.clone(),
        dir.0.join("empty"),
    ];
    let payloads: [&[u8]; 5] = [b"hello", b"short", b"lost", b"dir", b""];
    for tuning in tunings(2, 64) {
        for fsync in [false, true] {
            let got = write_all(&targets, &payloads, fsync, tuning);
            let expected = [5, 5, -libc::ENOENT as i64, -libc::EISDIR as i64, 0];
            assert_eq!(got, expected, "{tuning:?} fsync={fsync}");
            assert_eq!(std::fs::read(&targets[0]).unwrap(), b"hello");
            assert_eq!(std::fs::read(&targets[1]).unwrap(), b"short");
            assert_eq!(std::fs::read(&targets[4]).unwrap(), b"");
        }
    }
}

#[test]
fn a_write_longer_than_a_chunk_is_completed_by_its_follow_up() {
    let dir = TempDir::new("bigwrite");
    let target = dir.0.join("big");
    let payload: Vec<u8> = (0..follow_up::CHUNK + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    for tuning in tunings(2, 64) {
        let got = write_all(std::slice::from_ref(&target), &[&payload], true, tuning);
        assert_eq!(got, [payload.len() as i64]);
        assert!(std::fs::read(&target).unwrap() == payload);
    }
}

#[test]
fn a_path_written_twice_ends_with_the_last_data() {
    let dir = TempDir::new("twice");
    let path = dir.0.join("twice");
    let other = dir.0.join("other");
    let targets = [path.clone(), other.clone(), path.clone(), path.clone()];
    let payloads: [&[u8]; 4] = [b"first, longest of all", b"o", b"second", b"3rd"];
    for tuning in tunings(4, 64) {
        let got = write_all(&targets, &payloads, false, tuning);
        assert_eq!(got, [21, 1, 6, 3]);
        assert_eq!(std::fs::read(&path).unwrap(), b"3rd", "{tuning:?}");
        assert_eq!(std::fs::read(&other).unwrap(), b"o");
    }
}

#[test]
fn a_file_that_grows_or_shrinks_during_its_follow_up_is_read_to_eof() {
    let dir = TempDir::new("resize");
    for new_len in [300_000, 5_000, 0] {
        let path = dir.file("changing", 100_000);
        let mut sink = Collect::new(1);
        sink.resize_on_alloc = Some((path.clone(), new_len));
        let tuning = Tuning {
            buffer: 4096,
            ..Tuning::default()
        };
        read_files(
            libc::AT_FDCWD,
            &paths_of(std::slice::from_ref(&path)),
            tuning,
            &mut sink,
        )
        .unwrap();
        let got = sink.results[0].clone().unwrap().unwrap();
        assert_eq!(got, std::fs::read(&path).unwrap(), "resized to {new_len}");
    }
}
