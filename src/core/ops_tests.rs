//! Tests of the queue's operations beyond reads and writes: open, close, statx, timers,
//! links, deadlines and cancel, over a real ring.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::testing::{data_file, no_check, pipe, tempdir};
use super::{Done, Extra, Link, Op, Queue, Request, AT_FDCWD};

type Q = Queue<u32>;

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// An OPENAT of `path` relative to the current directory into a plain descriptor.
fn openat(path: CString, flags: i32) -> Op {
    Op::OpenAt {
        dir: AT_FDCWD,
        path,
        flags,
        mode: 0,
        slot: None,
    }
}

fn submit(q: &Q, op: Op, file: Option<RawFd>, link: Link, deadline: Option<Duration>, id: u32) {
    let req = Request {
        op,
        file,
        slot: None,
        link,
        deadline,
    };
    // SAFETY: the ops below own everything they point to, or point into buffers the
    // tests keep alive until the queue is closed.
    unsafe { q.prepare(req, id) }.map_err(|(e, _)| e).unwrap();
}

/// Commits and waits for `n` completions, sorted by id.
fn run(q: &Q, n: usize) -> Vec<Done<u32>> {
    q.commit().unwrap();
    let mut done = Vec::new();
    while done.len() < n {
        done.extend(
            q.wait(1, usize::MAX, Some(Duration::from_secs(10)), no_check)
                .unwrap(),
        );
    }
    done.sort_by_key(|d| d.payload);
    done
}

/// How many of this process's fds are open on `path` (tests run in parallel threads, so
/// only fds on a file of the test's own can be counted).
fn fds_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

fn statx_op(path: &Path, follow: bool) -> Op {
    Op::Statx {
        dir: AT_FDCWD,
        path: cpath(path),
        flags: Op::statx_flags(follow, false),
        buf: Box::new(unsafe { std::mem::zeroed() }),
    }
}

#[test]
fn openat_hands_over_a_new_fd_and_close_closes_it() {
    let (dir, _f) = data_file(100);
    let q = Q::new(8, 16).unwrap();
    let open = openat(
        cpath(&dir.path.join("data")),
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    submit(&q, open, None, Link::None, None, 1);
    let mut done = run(&q, 1);
    let Extra::Fd(fd) = std::mem::take(&mut done[0].extra) else {
        panic!("no fd: {:?}", done[0]);
    };
    assert_eq!(done[0].result, fd.as_raw_fd());
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    submit(&q, Op::Close { fd: raw }, None, Link::None, None, 2);
    assert_eq!(run(&q, 1)[0].result, 0);
    assert_eq!(unsafe { libc::fcntl(raw, libc::F_GETFD) }, -1, "closed");
}

#[test]
fn an_open_nobody_took_is_closed_with_the_queue() {
    let (dir, f) = data_file(10);
    drop(f);
    let path = dir.path.join("data");
    let q = Q::new(8, 16).unwrap();
    for id in 0..4 {
        let open = openat(
            cpath(&dir.path.join("data")),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        submit(&q, open, None, Link::None, None, id);
    }
    q.commit().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // Two are taken and dropped, two stay ready: every fd is closed either way.
    assert_eq!(fds_on(&path), 4);
    drop(q.wait(2, 2, None, no_check).unwrap());
    assert_eq!(fds_on(&path), 2);
    assert_eq!(q.close(true).unwrap().len(), 2);
    assert_eq!(fds_on(&path), 0);
}

#[test]
fn statx_agrees_with_metadata() {
    let (dir, _f) = data_file(12345);
    let path = dir.path.join("data");
    std::os::unix::fs::symlink(&path, dir.path.join("link")).unwrap();
    let q = Q::new(8, 16).unwrap();
    submit(&q, statx_op(&path, true), None, Link::None, None, 1);
    submit(
        &q,
        statx_op(&dir.path.join("link"), false),
        None,
        Link::None,
        None,
        2,
    );
    submit(
        &q,
        statx_op(&dir.path.join("missing"), true),
        None,
        Link::None,
        None,
        3,
    );
    let done = run(&q, 3);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).unwrap();
    let Extra::Stat(st) = &done[0].extra else {
        panic!("{:?}", done[0]);
    };
    assert_eq!(done[0].result, 0);
    assert_eq!(st.stx_size, meta.size());
    assert_eq!(st.stx_ino, meta.ino());
    assert_eq!(u32::from(st.stx_mode), meta.mode());
    assert_eq!(st.stx_mtime.tv_nsec as i64, meta.mtime_nsec());
    let Extra::Stat(link) = &done[1].extra else {
        panic!("{:?}", done[1]);
    };
    assert_eq!(u32::from(link.stx_mode) & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(done[2].result, -libc::ENOENT);
    assert!(matches!(done[2].extra, Extra::None));
}

#[test]
fn an_expired_timer_succeeds_and_delays_its_chain() {
    let q = Q::new(8, 16).unwrap();
    let start = Instant::now();
    let timer = Op::Timeout {
        after: super::ops::timespec(Duration::from_millis(50)),
    };
    submit(&q, timer, None, Link::Soft, None, 1);
    let after = Op::Timeout {
        after: super::ops::timespec(Duration::ZERO),
    };
    submit(&q, after, None, Link::None, None, 2);
    let done = run(&q, 2);
    assert_eq!((done[0].result, done[1].result), (0, 0));
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn a_deadline_on_a_pipe_read_completes_once_with_etimedout() {
    let (rd, _wr) = pipe();
    let q = Q::new(8, 16).unwrap();
    q.register(rd.as_raw_fd()).unwrap();
    let mut buf = [0u8; 16];
    let op = Op::Read {
        ptr: buf.as_mut_ptr(),
        len: 16,
        offset: 0,
    };
    let start = Instant::now();
    submit(
        &q,
        op,
        Some(rd.as_raw_fd()),
        Link::None,
        Some(Duration::from_millis(30)),
        1,
    );
    let done = run(&q, 1);
    assert_eq!(done[0].result, -libc::ETIMEDOUT);
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        q.in_flight().unwrap(),
        0,
        "the timer's own completion is not seen"
    );
    let more = q
        .wait(0, usize::MAX, Some(Duration::from_millis(50)), no_check)
        .unwrap();
    assert!(more.is_empty(), "exactly one completion per request");
}

#[test]
fn a_deadline_met_keeps_the_result_and_the_chain() {
    let (_dir, f) = data_file(100);
    let q = Q::new(8, 16).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    let mut buf = [0u8; 10];
    let op = Op::Read {
        ptr: buf.as_mut_ptr(),
        len: 10,
        offset: 0,
    };
    submit(
        &q,
        op,
        Some(f.as_raw_fd()),
        Link::Soft,
        Some(Duration::from_secs(5)),
        1,
    );
    submit(
        &q,
        Op::Fsync { datasync: true },
        Some(f.as_raw_fd()),
        Link::None,
        None,
        2,
    );
    let done = run(&q, 2);
    assert_eq!((done[0].result, done[1].result), (10, 0));
}

#[test]
fn a_failed_link_cancels_the_rest_a_hardlink_does_not() {
    let (dir, f) = data_file(100);
    let q = Q::new(8, 16).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    let missing = || statx_op(&dir.path.join("missing"), true);
    submit(&q, missing(), None, Link::Soft, None, 1);
    submit(
        &q,
        Op::Fsync { datasync: false },
        Some(f.as_raw_fd()),
        Link::Soft,
        None,
        2,
    );
    submit(
        &q,
        Op::Fsync { datasync: false },
        Some(f.as_raw_fd()),
        Link::None,
        None,
        3,
    );
    submit(&q, missing(), None, Link::Hard, None, 4);
    submit(
        &q,
        Op::Fsync { datasync: false },
        Some(f.as_raw_fd()),
        Link::None,
        None,
        5,
    );
    let results: Vec<i32> = run(&q, 5).iter().map(|d| d.result).collect();
    assert_eq!(
        results,
        vec![
            -libc::ENOENT,
            -libc::ECANCELED,
            -libc::ECANCELED,
            -libc::ENOENT,
            0
        ]
    );
}

#[test]
fn a_short_read_breaks_a_link() {
    let (_dir, f) = data_file(10);
    let q = Q::new(8, 16).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    let mut buf = [0u8; 100];
    let op = Op::Read {
        ptr: buf.as_mut_ptr(),
        len: 100,
        offset: 0,
    };
    submit(&q, op, Some(f.as_raw_fd()), Link::Soft, None, 1);
    submit(
        &q,
        Op::Fsync { datasync: false },
        Some(f.as_raw_fd()),
        Link::None,
        None,
        2,
    );
    let results: Vec<i32> = run(&q, 2).iter().map(|d| d.result).collect();
    assert_eq!(results, vec![10, -libc::ECANCELED]);
}

#[test]
fn a_failing_fsync_or_ftruncate_breaks_a_link() {
    // The kernel never marks a failed FSYNC or FTRUNCATE failed (as of 6.18): the core
    // must break their soft links itself.
    let (dir, _f) = data_file(10);
    let read_only = File::open(dir.path.join("data")).unwrap();
    let (r, _w) = pipe();
    let q = Q::new(8, 16).unwrap();
    q.register(r.as_raw_fd()).unwrap();
    let fsync = Op::Fsync { datasync: false };
    submit(&q, fsync, Some(r.as_raw_fd()), Link::Soft, None, 1);
    submit(&q, statx_op(&dir.path, true), None, Link::None, None, 2);
    let ftruncate = Op::Ftruncate {
        fd: read_only.as_raw_fd(),
        len: 0,
    };
    submit(&q, ftruncate, None, Link::Soft, None, 3);
    submit(&q, statx_op(&dir.path, true), None, Link::None, None, 4);
    let results: Vec<i32> = run(&q, 4).iter().map(|d| d.result).collect();
    assert_eq!(
        results,
        vec![
            -libc::EINVAL,
            -libc::ECANCELED,
            -libc::EINVAL,
            -libc::ECANCELED
        ]
    );
}

#[test]
fn a_chain_ends_at_the_end_of_a_commit() {
    let (dir, _f) = data_file(10);
    let q = Q::new(8, 16).unwrap();
    submit(
        &q,
        statx_op(&dir.path.join("missing"), true),
        None,
        Link::Soft,
        None,
        1,
    );
    assert_eq!(run(&q, 1)[0].result, -libc::ENOENT);
    submit(
        &q,
        statx_op(&dir.path.join("data"), true),
        None,
        Link::None,
        None,
        2,
    );
    assert_eq!(
        run(&q, 1)[0].result,
        0,
        "not part of the previous commit's chain"
    );
}

#[test]
fn cancel_stops_a_pending_read_and_spares_a_finished_one() {
    let (rd, _wr) = pipe();
    let (_dir, f) = data_file(100);
    let q = Q::new(8, 16).unwrap();
    q.register(rd.as_raw_fd()).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    let pending = Op::Read {
        ptr: a.as_mut_ptr(),
        len: 16,
        offset: 0,
    };
    let finished = Op::Read {
        ptr: b.as_mut_ptr(),
        len: 16,
        offset: 0,
    };
    submit(&q, pending, Some(rd.as_raw_fd()), Link::None, None, 1);
    submit(&q, finished, Some(f.as_raw_fd()), Link::None, None, 2);
    q.commit().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut tags = Vec::new();
    q.for_each_in_flight(|tag, id| {
        if let Some(tag) = tag {
            tags.push((tag, *id));
        }
    })
    .unwrap();
    let all: Vec<u64> = tags.iter().map(|(t, _)| *t).collect();
    q.cancel(&all).unwrap();
    let mut done = Vec::new();
    while done.len() < 2 {
        done.extend(
            q.wait(1, 2, Some(Duration::from_secs(5)), no_check)
                .unwrap(),
        );
    }
    done.sort_by_key(|d| d.payload);
    assert_eq!((done[0].result, done[1].result), (-libc::ECANCELED, 16));
    q.cancel(&all).unwrap();
}

#[test]
fn cancel_stops_a_timer() {
    let q = Q::new(8, 16).unwrap();
    let timer = Op::Timeout {
        after: super::ops::timespec(Duration::from_secs(60)),
    };
    submit(&q, timer, None, Link::None, None, 1);
    q.commit().unwrap();
    let mut tags = Vec::new();
    q.for_each_in_flight(|tag, _| tags.extend(tag)).unwrap();
    q.cancel(&tags).unwrap();
    let done = q
        .wait(1, 1, Some(Duration::from_secs(5)), no_check)
        .unwrap();
    assert_eq!(done[0].result, -libc::ECANCELED);
}

#[test]
fn path_operations_do_what_their_syscalls_do() {
    let dir = tempdir::Dir::new();
    let p = |name: &str| cpath(&dir.path.join(name));
    let q = Q::new(16, 32).unwrap();
    std::fs::write(dir.path.join("a"), b"hello").unwrap();
    let ops = vec![
        Op::MkdirAt {
            dir: AT_FDCWD,
            path: p("d"),
            mode: 0o750,
        },
        Op::RenameAt {
            old_dir: AT_FDCWD,
            old: p("a"),
            new_dir: AT_FDCWD,
            new: p("d/b"),
        },
        Op::LinkAt {
            old_dir: AT_FDCWD,
            old: p("d/b"),
            new_dir: AT_FDCWD,
            new: p("c"),
            flags: 0,
        },
        Op::SymlinkAt {
            target: p("d/b"),
            dir: AT_FDCWD,
            link: p("s"),
        },
        Op::UnlinkAt {
            dir: AT_FDCWD,
            path: p("c"),
            flags: 0,
        },
    ];
    for (id, op) in ops.into_iter().enumerate() {
        submit(&q, op, None, Link::Soft, None, id as u32);
    }
    let results: Vec<i32> = run(&q, 5).iter().map(|d| d.result).collect();
    assert_eq!(results, vec![0; 5]);
    assert_eq!(std::fs::read(dir.path.join("d/b")).unwrap(), b"hello");
    assert_eq!(std::fs::read(dir.path.join("s")).unwrap(), b"hello");
    assert!(!dir.path.join("c").exists());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path.join("d/b"))
        .unwrap();
    if q.supports(io_uring::opcode::Ftruncate::CODE) {
        submit(
            &q,
            Op::Ftruncate {
                fd: f.as_raw_fd(),
                len: 2,
            },
            None,
            Link::None,
            None,
            9,
        );
        assert_eq!(run(&q, 1)[0].result, 0);
        assert_eq!(std::fs::read(dir.path.join("d/b")).unwrap(), b"he");
    }
    let rmdir = Op::UnlinkAt {
        dir: AT_FDCWD,
        path: p("d"),
        flags: libc::AT_REMOVEDIR,
    };
    submit(&q, rmdir, None, Link::None, None, 10);
    assert_eq!(run(&q, 1)[0].result, -libc::ENOTEMPTY);
}

#[test]
fn a_deadline_takes_two_submission_entries() {
    let (rd, _wr) = pipe();
    let q = Q::new(2, 4).unwrap();
    q.register(rd.as_raw_fd()).unwrap();
    let mut buf = [0u8; 4];
    let ptr = buf.as_mut_ptr();
    let op = || Op::Read {
        ptr,
        len: 4,
        offset: 0,
    };
    submit(
        &q,
        op(),
        Some(rd.as_raw_fd()),
        Link::None,
        Some(Duration::from_millis(5)),
        1,
    );
    let full = unsafe { q.prepare(Request::new(op(), Some(rd.as_raw_fd())), 2) };
    assert!(matches!(full, Err((super::Error::Full(_), 2))));
    assert_eq!(q.prepared().unwrap(), 1);
    assert_eq!(run(&q, 1)[0].result, -libc::ETIMEDOUT);
}

#[test]
fn missing_opcodes_run_on_the_emulator_in_their_chain() {
    let dir = tempdir::Dir::new();
    let p = |name: &str| cpath(&dir.path.join(name));
    let mut q = Q::new(8, 16).unwrap();
    for code in [
        io_uring::opcode::MkDirAt::CODE,
        io_uring::opcode::Statx::CODE,
    ] {
        q.hide_opcode(code);
    }
    // mkdir (emulated) -> statx (emulated) -> close of a bad fd (kernel) -> mkdir again
    // (emulated: fails, EEXIST) -> statx (cancelled behind the soft link).
    let mkdir = || Op::MkdirAt {
        dir: AT_FDCWD,
        path: p("d"),
        mode: 0o700,
    };
    submit(&q, mkdir(), None, Link::Soft, None, 1);
    submit(
        &q,
        statx_op(&dir.path.join("d"), true),
        None,
        Link::Hard,
        None,
        2,
    );
    submit(&q, Op::Close { fd: -1 }, None, Link::Hard, None, 3);
    submit(&q, mkdir(), None, Link::Soft, None, 4);
    submit(
        &q,
        statx_op(&dir.path.join("d"), true),
        None,
        Link::None,
        None,
        5,
    );
    let done = run(&q, 5);
    let results: Vec<i32> = done.iter().map(|d| d.result).collect();
    assert_eq!(
        results,
        vec![0, 0, -libc::EBADF, -libc::EEXIST, -libc::ECANCELED]
    );
    let Extra::Stat(st) = &done[1].extra else {
        panic!("{:?}", done[1]);
    };
    assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFDIR);
}

#[test]
fn an_emulated_request_cancelled_before_it_starts_completes_with_ecanceled() {
    let dir = tempdir::Dir::new();
    let mut q = Q::new(8, 16).unwrap();
    q.hide_opcode(io_uring::opcode::MkDirAt::CODE);
    let timer = Op::Timeout {
        after: super::ops::timespec(Duration::from_millis(100)),
    };
    submit(&q, timer, None, Link::Hard, None, 1);
    let mkdir = Op::MkdirAt {
        dir: AT_FDCWD,
        path: cpath(&dir.path.join("d")),
        mode: 0o700,
    };
    submit(&q, mkdir, None, Link::None, None, 2);
    q.commit().unwrap();
    let mut tags = Vec::new();
    q.for_each_in_flight(|tag, id| {
        if *id == 2 {
            tags.extend(tag);
        }
    })
    .unwrap();
    q.cancel(&tags).unwrap();
    let mut done = Vec::new();
    while done.len() < 2 {
        done.extend(
            q.wait(1, 2, Some(Duration::from_secs(5)), no_check)
                .unwrap(),
        );
    }
    done.sort_by_key(|d| d.payload);
    assert_eq!((done[0].result, done[1].result), (0, -libc::ECANCELED));
    assert!(!dir.path.join("d").exists());
}

#[test]
fn closing_waits_for_held_and_emulated_requests() {
    let (rd, _wr) = pipe();
    let dir = tempdir::Dir::new();
    let mut q = Q::new(8, 16).unwrap();
    q.hide_opcode(io_uring::opcode::MkDirAt::CODE);
    q.register(rd.as_raw_fd()).unwrap();
    let mut buf = [0u8; 8];
    let read = Op::Read {
        ptr: buf.as_mut_ptr(),
        len: 8,
        offset: 0,
    };
    submit(&q, read, Some(rd.as_raw_fd()), Link::Hard, None, 1);
    let mkdir = Op::MkdirAt {
        dir: AT_FDCWD,
        path: cpath(&dir.path.join("d")),
        mode: 0o700,
    };
    submit(&q, mkdir, None, Link::None, None, 2);
    q.commit().unwrap();
    assert_eq!(q.in_flight().unwrap(), 2);
    assert_eq!(q.close(true).unwrap().len(), 2);
    assert!(!dir.path.join("d").exists(), "the held mkdir never ran");
}

/// A whole-file read as a group on direct descriptor `slot`: OPENAT -> READ -> CLOSE.
fn read_group(path: &Path, buf: &mut [u8]) -> impl FnOnce(Option<u32>) -> Vec<Request> {
    let path = cpath(path);
    let (ptr, len) = (buf.as_mut_ptr(), buf.len());
    move |slot| {
        let slot = slot.expect("a direct slot");
        let open = Op::OpenAt {
            dir: AT_FDCWD,
            path,
            flags: libc::O_RDONLY,
            mode: 0,
            slot: Some(slot),
        };
        let read = Op::Read {
            ptr,
            len,
            offset: 0,
        };
        let mut reqs = vec![
            Request::new(open, None),
            Request::new(read, None),
            Request::new(Op::CloseDirect { slot }, None),
        ];
        reqs[0].link = Link::Soft;
        reqs[1].link = Link::Hard;
        reqs[1].slot = Some(slot);
        reqs
    }
}

#[test]
fn a_group_completes_once_with_its_value_or_first_error() {
    let (dir, _f) = data_file(3000);
    let q = Q::new(16, 32).unwrap();
    assert!(q.has_direct());
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 4096];
    let mut c = vec![0u8; 4096];
    for (id, (path, buf)) in [
        (dir.path.join("data"), &mut a),
        (dir.path.join("missing"), &mut b),
        (dir.path.clone(), &mut c),
    ]
    .into_iter()
    .enumerate()
    {
        unsafe { q.prepare_group(true, (1, None), read_group(&path, buf), id as u32, || 99) }
            .map_err(|(e, _)| e)
            .unwrap();
    }
    assert_eq!(q.prepared().unwrap(), 3, "a group counts as one request");
    let done = run(&q, 3);
    let results: Vec<i32> = done.iter().map(|d| d.result).collect();
    assert_eq!(results, vec![3000, -libc::ENOENT, -libc::EISDIR]);
    assert_eq!(
        &a[..3000],
        &std::fs::read(dir.path.join("data")).unwrap()[..]
    );
    assert_eq!(q.in_flight().unwrap(), 0);
    assert!(q
        .wait(0, usize::MAX, Some(Duration::from_millis(20)), no_check)
        .unwrap()
        .is_empty());
}

/// `read_group` with a 1-byte EOF probe at the file position after the read (member 2).
fn probed_read_group(path: &Path, buf: &mut [u8]) -> impl FnOnce(Option<u32>) -> Vec<Request> {
    let path = cpath(path);
    let len = buf.len() - 1;
    let ptr = buf.as_mut_ptr();
    move |slot| {
        let slot = slot.expect("a direct slot");
        let open = Op::OpenAt {
            dir: AT_FDCWD,
            path,
            flags: libc::O_RDONLY,
            mode: 0,
            slot: Some(slot),
        };
        let at_position = u64::MAX;
        let read = Op::Read {
            ptr,
            len,
            offset: at_position,
        };
        let probe = Op::Read {
            ptr: ptr.wrapping_add(len),
            len: 1,
            offset: at_position,
        };
        let mut reqs = vec![
            Request::new(open, None),
            Request::new(read, None),
            Request::new(probe, None),
            Request::new(Op::CloseDirect { slot }, None),
        ];
        reqs[0].link = Link::Soft;
        for r in &mut reqs[1..3] {
            r.link = Link::Hard;
            r.slot = Some(slot);
        }
        reqs
    }
}

#[test]
fn a_group_probe_tells_eof_from_a_short_read() {
    let (dir, f) = data_file(3000);
    drop(f);
    let q = Q::new(32, 64).unwrap();
    let mut whole = vec![0u8; 4097];
    let mut exact = vec![0u8; 3001];
    let mut cut = vec![0u8; 1001];
    let mut proc_file = vec![0u8; 65537];
    let data = dir.path.join("data");
    let maps = Path::new("/proc/self/smaps").to_path_buf();
    for (id, (path, buf)) in [
        (&data, &mut whole),
        (&data, &mut exact),
        (&data, &mut cut),
        (&maps, &mut proc_file),
    ]
    .into_iter()
    .enumerate()
    {
        unsafe {
            q.prepare_group(
                true,
                (1, Some(2)),
                probed_read_group(path, buf),
                id as u32,
                || 0,
            )
        }
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let done = run(&q, 4);
    let seen: Vec<(i32, bool)> = done.iter().map(|d| (d.result, d.more)).collect();
    assert_eq!(seen[..3], [(3000, false), (3000, false), (1000, true)]);
    // /proc's seq files return a page or so per read: short, and not the end.
    assert!(seen[3].0 < 65536 && seen[3].1, "{:?}", seen[3]);
    assert_eq!(fds_on(&data), 0);
}

#[test]
fn group_slots_are_reused_and_no_fd_is_left_open() {
    let (dir, f) = data_file(100);
    drop(f);
    let path = dir.path.join("data");
    let q = Q::new(128, 256).unwrap();
    let mut bufs = vec![vec![0u8; 256]; 32];
    for round in 0..64 {
        for (i, buf) in bufs.iter_mut().enumerate() {
            unsafe { q.prepare_group(true, (1, None), read_group(&path, buf), i as u32, || 0) }
                .map_err(|(e, _)| e)
                .unwrap();
        }
        let done = run(&q, 32);
        assert!(
            done.iter().all(|d| d.result == 100),
            "round {round}: {done:?}"
        );
    }
    assert_eq!(fds_on(&path), 0);
}

#[test]
fn closing_drains_groups_in_flight() {
    let (rd, _wr) = pipe();
    let q = Q::new(8, 16).unwrap();
    q.register(rd.as_raw_fd()).unwrap();
    let mut buf = [0u8; 8];
    let (ptr, fd) = (buf.as_mut_ptr(), rd.as_raw_fd());
    let build = move |_slot: Option<u32>| {
        let mut read = Request::new(
            Op::Read {
                ptr,
                len: 8,
                offset: 0,
            },
            Some(fd),
        );
        read.link = Link::Hard;
        vec![read, Request::new(Op::Close { fd: -1 }, None)]
    };
    unsafe { q.prepare_group(false, (0, None), build, 1, || 0) }
        .map_err(|(e, _)| e)
        .unwrap();
    q.commit().unwrap();
    assert_eq!(q.in_flight().unwrap(), 1);
    assert_eq!(
        q.close(true).unwrap().len(),
        1,
        "the leader's payload comes back"
    );
}

#[test]
fn opens_waiting_for_a_fifo_s_peer_hold_back_no_other_open() {
    // A thread's io-wq takes its worker limit from the first ring it submits to: a
    // 2-entry ring here (as the availability probe's), then the queue's.
    let small = io_uring::IoUring::new(2).unwrap();
    let nop = io_uring::opcode::Nop::new().build();
    // SAFETY: a NOP points to no memory.
    unsafe { small.submission_shared().push(&nop) }.unwrap();
    small.submit_and_wait(1).unwrap();
    let (dir, _f) = data_file(10);
    let q = Q::new(64, 128).unwrap();
    let fifos: Vec<CString> = (0..3)
        .map(|i| cpath(&dir.path.join(format!("fifo{i}"))))
        .collect();
    for (id, fifo) in (10..).zip(&fifos) {
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let open = openat(fifo.clone(), libc::O_WRONLY | libc::O_CLOEXEC);
        submit(&q, open, None, Link::None, None, id); // to io-wq, waiting for a reader
    }
    q.commit().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let open = openat(
        cpath(&dir.path.join("data")),
        libc::O_WRONLY | libc::O_CLOEXEC,
    );
    submit(&q, open, None, Link::None, None, 1);
    q.commit().unwrap();
    let done = q
        .wait(1, 1, Some(Duration::from_secs(5)), no_check)
        .unwrap();
    for fifo in &fifos {
        // SAFETY: the reader each waiting open needs; closed at once.
        unsafe { libc::close(libc::open(fifo.as_ptr(), libc::O_RDWR)) };
    }
    let rest = q
        .wait(3, 3, Some(Duration::from_secs(10)), no_check)
        .unwrap();
    assert_eq!(done.iter().map(|d| d.payload).collect::<Vec<_>>(), vec![1]);
    assert!(rest.iter().all(|d| d.result >= 0), "{rest:?}");
}
