//! Tests of the queue over a real ring.

use super::*;
use crate::core::testing::{data_file, no_check, pipe};
use crate::core::{Op, Request};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicUsize;
use std::thread;

fn read(q: &Queue<Vec<u8>>, fd: RawFd, offset: u64, len: usize) {
    let mut buf = vec![0u8; len];
    let op = Op::Read {
        ptr: buf.as_mut_ptr(),
        len,
        offset,
    };
    unsafe { q.prepare(Request::new(op, Some(fd)), buf) }
        .map_err(|(e, _)| e)
        .unwrap();
}

#[test]
fn read_round_trip_in_random_order() {
    let (_dir, f) = data_file(64 * 4096);
    let q: Queue<Vec<u8>> = Queue::new(32, 64).unwrap();
    let fd = f.as_raw_fd();
    q.register(fd).unwrap();
    let order: Vec<u64> = (0..64u64).map(|i| (i * 37) % 64).collect();
    let mut seen = 0;
    for chunk in order.chunks(16) {
        for &block in chunk {
            read(&q, fd, block * 4096, 4096);
        }
        assert_eq!(q.commit().unwrap(), chunk.len());
        let done = q.wait(chunk.len(), usize::MAX, None, no_check).unwrap();
        assert_eq!(done.len(), chunk.len());
        for d in done {
            assert_eq!(d.result, 4096);
            let first = d.payload[0] as usize;
            // The pattern tells which block this is: check it all.
            let block_start = (0..64)
                .map(|b| b * 4096)
                .find(|s| s % 251 == first)
                .unwrap();
            assert!(d
                .payload
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((block_start + i) % 251) as u8));
            seen += 1;
        }
    }
    assert_eq!(seen, 64);
    assert_eq!(q.in_flight().unwrap(), 0);
    q.close(false).unwrap();
}

#[test]
fn short_read_at_eof_and_errors_as_negative_errno() {
    let (_dir, f) = data_file(100);
    let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
    let fd = f.as_raw_fd();
    q.register(fd).unwrap();
    read(&q, fd, 50, 4096);
    q.commit().unwrap();
    let done = q.wait(1, 1, None, no_check).unwrap();
    assert_eq!(done[0].result, 50);

    let ro = File::open(_dir.path.join("data")).unwrap();
    q.register(ro.as_raw_fd()).unwrap();
    let data = vec![1u8; 10];
    let op = Op::Write {
        ptr: data.as_ptr(),
        len: 10,
        offset: 0,
    };
    unsafe { q.prepare(Request::new(op, Some(ro.as_raw_fd())), data) }
        .map_err(|(e, _)| e)
        .unwrap();
    q.commit().unwrap();
    let done = q.wait(1, 1, None, no_check).unwrap();
    assert_eq!(done[0].result, -libc::EBADF);
}

#[test]
fn capacity_is_checked_before_queuing() {
    let (_dir, f) = data_file(4096);
    let q: Queue<Vec<u8>> = Queue::new(2, 3).unwrap();
    let fd = f.as_raw_fd();
    q.register(fd).unwrap();
    read(&q, fd, 0, 1);
    read(&q, fd, 0, 1);
    let buf = vec![0u8; 1];
    let full = unsafe { q.prepare(Request::new(Op::Fsync { datasync: false }, Some(fd)), buf) };
    assert!(matches!(full, Err((Error::Full(_), _))));
    assert_eq!(q.commit().unwrap(), 2);
    read(&q, fd, 0, 1); // 2 in flight + 1 prepared == cq_entries
    let over = unsafe { q.prepare(Request::new(Op::Fsync { datasync: true }, Some(fd)), vec![]) };
    assert!(matches!(over, Err((Error::Full(_), _))));
    assert_eq!(q.prepared().unwrap(), 1);
    assert!(matches!(q.close(false), Err(Error::Busy(_))));
    let drained = q.close(true).unwrap();
    assert_eq!(drained.len(), 3);
    assert!(matches!(q.commit(), Err(Error::Closed)));
    assert!(
        q.close(false).unwrap().is_empty(),
        "closing twice is a no-op"
    );
}

#[test]
fn unregistered_fd_and_empty_queue_are_refused() {
    let q: Queue<()> = Queue::new(2, 4).unwrap();
    let r = unsafe { q.prepare(Request::new(Op::Fsync { datasync: false }, Some(0)), ()) };
    assert!(matches!(r, Err((Error::NotRegistered(0), ()))));
    assert!(matches!(q.commit(), Err(Error::Empty(_))));
    assert!(matches!(
        q.wait(1, 1, None, no_check),
        Err(WaitError::Queue(Error::Empty(_)))
    ));
    assert!(matches!(q.deregister(5), Err(Error::NotRegistered(5))));
    let r = q
        .wait(1, 4, Some(Duration::from_millis(20)), no_check)
        .unwrap();
    assert!(
        r.is_empty(),
        "a timed wait with nothing in flight returns []"
    );
}

#[test]
fn wakeup_is_never_lost_and_coalesces() {
    let q: Queue<()> = Queue::new(2, 4).unwrap();
    q.wakeup().unwrap();
    q.wakeup().unwrap();
    let r = q.wait(1, 1, Some(Duration::from_secs(5)), no_check);
    assert!(matches!(r, Err(WaitError::Interrupted(v)) if v.is_empty()));
    let r = q
        .wait(0, 1, Some(Duration::from_millis(10)), no_check)
        .unwrap();
    assert!(r.is_empty(), "two wakeups count once");
}

#[test]
fn wakeup_from_another_thread_interrupts_a_blocked_wait() {
    let q: Arc<Queue<()>> = Arc::new(Queue::new(2, 4).unwrap());
    let q2 = q.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        q2.wakeup().unwrap();
    });
    let start = Instant::now();
    let r = q.wait(1, 1, Some(Duration::from_secs(10)), no_check);
    assert!(matches!(r, Err(WaitError::Interrupted(_))));
    assert!(start.elapsed() < Duration::from_secs(2));
    t.join().unwrap();
}

#[test]
fn pipe_read_in_flight_is_cancelled_on_close() {
    let (rd, _wr) = pipe();
    let fds = [rd.as_raw_fd()];
    let q: Queue<Vec<u8>> = Queue::new(2, 4).unwrap();
    q.register(fds[0]).unwrap();
    read(&q, fds[0], 0, 16);
    q.commit().unwrap();
    let r = q
        .wait(1, 1, Some(Duration::from_millis(20)), no_check)
        .unwrap();
    assert!(r.is_empty(), "nothing was written to the pipe");
    assert_eq!(q.close(true).unwrap().len(), 1);
}

#[test]
fn close_from_another_thread_ends_a_wait() {
    let (rd, _wr) = pipe();
    let fds = [rd.as_raw_fd()];
    let q: Arc<Queue<Vec<u8>>> = Arc::new(Queue::new(2, 4).unwrap());
    q.register(fds[0]).unwrap();
    read(&q, fds[0], 0, 16);
    q.commit().unwrap();
    let q2 = q.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        q2.close(true).unwrap().len()
    });
    let r = q.wait(1, 1, None, no_check);
    assert!(matches!(r, Err(WaitError::Closed(_))), "{r:?}");
    assert_eq!(t.join().unwrap(), 1);
}

#[test]
fn a_failing_signal_check_loses_nothing() {
    let (rd, _wr) = pipe();
    let fds = [rd.as_raw_fd()];
    let (_dir, f) = data_file(4096);
    let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    q.register(fds[0]).unwrap();
    read(&q, f.as_raw_fd(), 0, 4096);
    read(&q, fds[0], 0, 16);
    q.commit().unwrap();
    let calls = AtomicUsize::new(0);
    let r = q.wait(2, 2, None, || {
        calls.fetch_add(1, Ordering::Relaxed);
        Err("KeyboardInterrupt")
    });
    assert!(matches!(r, Err(WaitError::Signal("KeyboardInterrupt"))));
    assert_eq!(q.in_flight().unwrap(), 2);
    let done = q.wait(1, 1, None, no_check).unwrap();
    assert_eq!(done[0].result, 4096, "the file read is still there");
    assert_eq!(q.close(true).unwrap().len(), 1);
}

#[test]
fn deregister_is_refused_while_in_use_and_pins_the_file() {
    let (dir, f) = data_file(4096);
    let q: Queue<Vec<u8>> = Queue::new(2, 4).unwrap();
    let fd = f.as_raw_fd();
    q.register(fd).unwrap();
    read(&q, fd, 0, 4);
    assert!(matches!(q.deregister(fd), Err(Error::Busy(_))));
    q.commit().unwrap();
    q.wait(1, 1, None, no_check).unwrap();
    // Close the caller's fd: the registration still reaches the file.
    drop(f);
    read(&q, fd, 4, 4);
    q.commit().unwrap();
    let done = q.wait(1, 1, None, no_check).unwrap();
    assert_eq!(done[0].result, 4);
    assert_eq!(done[0].payload, vec![4, 5, 6, 7]);
    q.deregister(fd).unwrap();
    drop(dir);
}

#[test]
fn an_adopted_fd_is_used_under_its_own_number_with_no_duplicate() {
    let (_dir, f) = data_file(4096);
    let q: Queue<Vec<u8>> = Queue::new(2, 4).unwrap();
    let fd = f.as_raw_fd();
    assert!(matches!(q.adopt(-1), Err(Error::Invalid(_))));
    let probe = || {
        // SAFETY: dup of a live descriptor, closed at once: the lowest free number.
        let n = unsafe { libc::dup(fd) };
        unsafe { libc::close(n) };
        n
    };
    let free = probe();
    q.adopt(fd).unwrap();
    q.adopt(fd).unwrap(); // again: nothing changes
    assert_eq!(probe(), free, "adopting took no descriptor");
    // A batch gets its own descriptor of the same file.
    let lent = q.lend_file(fd).unwrap();
    assert_ne!(lent.as_raw_fd(), fd);
    drop(lent);
    read(&q, fd, 4, 4);
    assert!(matches!(q.deregister(fd), Err(Error::Busy(_))));
    q.commit().unwrap();
    let done = q.wait(1, 1, None, no_check).unwrap();
    assert_eq!(
        (done[0].result, done[0].payload.clone()),
        (4, vec![4, 5, 6, 7])
    );
    q.deregister(fd).unwrap();
    assert!(matches!(q.deregister(fd), Err(Error::NotRegistered(_))));
    // The caller's fd was never touched.
    // SAFETY: fcntl(F_GETFD) on a descriptor `f` owns.
    assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    q.close(false).unwrap();
}

#[test]
fn completions_left_behind_by_max_events_keep_the_eventfd_readable() {
    let (_dir, f) = data_file(4096);
    let q: Queue<Vec<u8>> = Queue::new(4, 8).unwrap();
    q.register(f.as_raw_fd()).unwrap();
    read(&q, f.as_raw_fd(), 0, 16);
    read(&q, f.as_raw_fd(), 16, 16);
    q.commit().unwrap();
    let first = q.wait(2, 2, None, no_check).unwrap();
    assert_eq!(first.len(), 2);
    read(&q, f.as_raw_fd(), 0, 16);
    read(&q, f.as_raw_fd(), 16, 16);
    q.commit().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let one = q.wait(0, 1, Some(Duration::ZERO), no_check).unwrap();
    assert_eq!(one.len(), 1);
    let mut pfd = libc::pollfd {
        fd: q.eventfd().unwrap(),
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        1,
        "one is still ready"
    );
    assert_eq!(
        q.wait(0, 1, Some(Duration::ZERO), no_check).unwrap().len(),
        1
    );
}

#[test]
fn sizes_are_validated() {
    assert!(matches!(Queue::<()>::new(0, 2), Err(Error::Invalid(_))));
    assert!(matches!(Queue::<()>::new(3, 6), Err(Error::Invalid(_))));
    assert!(matches!(Queue::<()>::new(8, 4), Err(Error::Invalid(_))));
    assert!(matches!(Queue::<()>::new(8, 65537), Err(Error::Invalid(_))));
    let q = Queue::<()>::new(1, 1).unwrap();
    assert_eq!((q.sq_entries(), q.cq_entries()), (1, 1));
}
