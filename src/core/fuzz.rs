//! Property tests: random operation sequences against the core queue and a model of its
//! books. Every request must come back exactly once, the counters must match the model
//! after every step, and every refusal must be the one the model predicts.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

use proptest::prelude::*;

use super::{Error, Op, Queue, Request, WaitError};

const FILE_SIZE: u64 = 64 * 1024;

#[derive(Debug, Clone)]
enum Step {
    Register,
    Deregister,
    Read { offset: u64, len: usize },
    Write { offset: u64, len: usize },
    Sync { datasync: bool },
    ReadUnregistered,
    Commit,
    Wait { min: usize, max: usize, timed: bool },
    Wakeup,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Register),
        1 => Just(Step::Deregister),
        6 => (0..FILE_SIZE + 8192, 0usize..9000).prop_map(|(offset, len)| Step::Read { offset, len }),
        3 => (0..FILE_SIZE, 0usize..4096).prop_map(|(offset, len)| Step::Write {
            offset: offset.min(FILE_SIZE - len as u64),
            len,
        }),
        1 => any::<bool>().prop_map(|datasync| Step::Sync { datasync }),
        1 => Just(Step::ReadUnregistered),
        4 => Just(Step::Commit),
        4 => (0usize..6, 1usize..8, any::<bool>()).prop_map(|(min, max, timed)| Step::Wait { min, max, timed }),
        1 => Just(Step::Wakeup),
    ]
}

/// What the model knows about the queue.
#[derive(Default)]
struct Model {
    registered: bool,
    prepared: Vec<u64>,
    in_flight: HashSet<u64>,
    returned: HashSet<u64>,
    woken: bool,
    /// Expected length of each read (by id), from the fixed file size.
    expect_len: std::collections::HashMap<u64, i32>,
}

fn run(steps: Vec<Step>, sq: u32, cq: u32) -> Result<(), TestCaseError> {
    let path = std::env::temp_dir().join(format!(
        "uringq-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut f = File::create(&path).unwrap();
    f.write_all(&vec![0xA5u8; FILE_SIZE as usize]).unwrap();
    drop(f);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let other = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let fd = file.as_raw_fd();

    let q: Queue<(u64, Vec<u8>)> = Queue::new(sq, cq).unwrap();
    let mut m = Model::default();
    let mut next_id = 0u64;
    for s in steps {
        let capacity_ok =
            m.prepared.len() < sq as usize && m.prepared.len() + m.in_flight.len() < cq as usize;
        match s {
            Step::Register => {
                q.register(fd).unwrap();
                m.registered = true;
            }
            Step::Deregister => {
                let users = m.prepared.len() + m.in_flight.len();
                match q.deregister(fd) {
                    Ok(()) => {
                        prop_assert!(m.registered && users == 0);
                        m.registered = false;
                    }
                    Err(Error::NotRegistered(_)) => prop_assert!(!m.registered),
                    Err(Error::Busy(_)) => prop_assert!(m.registered && users > 0),
                    Err(e) => prop_assert!(false, "deregister: {e}"),
                }
            }
            Step::Read { .. } | Step::Write { .. } | Step::Sync { .. } | Step::ReadUnregistered => {
                let id = next_id;
                next_id += 1;
                let (target, op, buf, expect) = match s {
                    Step::Read { offset, len } => {
                        let mut buf = vec![0u8; len];
                        let op = Op::Read {
                            ptr: buf.as_mut_ptr(),
                            len,
                            offset,
                        };
                        let avail = FILE_SIZE.saturating_sub(offset) as usize;
                        (fd, op, buf, Some(len.min(avail) as i32))
                    }
                    Step::Write { offset, len } => {
                        let buf = vec![0x5Au8; len];
                        let op = Op::Write {
                            ptr: buf.as_ptr(),
                            len,
                            offset,
                        };
                        (fd, op, buf, Some(len as i32))
                    }
                    Step::Sync { datasync } => (fd, Op::Fsync { datasync }, Vec::new(), Some(0)),
                    _ => (
                        other.as_raw_fd(),
                        Op::Fsync { datasync: false },
                        Vec::new(),
                        None,
                    ),
                };
                let registered = target == fd && m.registered;
                match unsafe { q.prepare(Request::new(op, Some(target)), (id, buf)) } {
                    Ok(()) => {
                        prop_assert!(registered && capacity_ok);
                        m.prepared.push(id);
                        if let Some(len) = expect {
                            m.expect_len.insert(id, len);
                        }
                    }
                    Err((Error::Full(_), (back, _))) => {
                        prop_assert_eq!(back, id);
                        prop_assert!(!capacity_ok);
                    }
                    Err((Error::NotRegistered(_), _)) => prop_assert!(!registered),
                    Err((e, _)) => prop_assert!(false, "prepare: {e}"),
                }
            }
            Step::Commit => match q.commit() {
                Ok(n) => {
                    prop_assert_eq!(n, m.prepared.len(), "the kernel takes every valid SQE");
                    m.in_flight.extend(m.prepared.drain(..));
                }
                Err(Error::Empty(_)) => prop_assert!(m.prepared.is_empty()),
                Err(e) => prop_assert!(false, "commit: {e}"),
            },
            Step::Wakeup => {
                q.wakeup().unwrap();
                m.woken = true;
            }
            Step::Wait { min, max, timed } => {
                let (min, max) = (min.min(max), max);
                let timeout = timed.then(|| Duration::from_millis(2));
                let r = q.wait(min, max, timeout, || Ok::<(), ()>(()));
                let done = match r {
                    Ok(done) => {
                        prop_assert!(!m.woken, "a pending wakeup must win");
                        if !timed {
                            prop_assert!(!m.in_flight.is_empty() && min <= m.in_flight.len());
                        }
                        prop_assert!(timed || done.len() >= min);
                        done
                    }
                    Err(WaitError::Interrupted(done)) => {
                        prop_assert!(m.woken);
                        m.woken = false;
                        done
                    }
                    Err(WaitError::Queue(Error::Empty(_))) => {
                        prop_assert!(!timed && !m.woken && m.in_flight.is_empty());
                        continue;
                    }
                    Err(WaitError::Queue(Error::Invalid(_))) => {
                        prop_assert!(!timed && !m.woken && min > m.in_flight.len());
                        continue;
                    }
                    Err(e) => {
                        prop_assert!(false, "wait: {e:?}");
                        unreachable!()
                    }
                };
                prop_assert!(done.len() <= max);
                for d in done {
                    let (id, buf) = d.payload;
                    prop_assert!(
                        m.in_flight.remove(&id),
                        "returned once, and only if in flight"
                    );
                    prop_assert!(m.returned.insert(id));
                    if let Some(&len) = m.expect_len.get(&id) {
                        prop_assert_eq!(d.result, len, "id {} ({} byte buffer)", id, buf.len());
                    }
                }
            }
        }
        prop_assert_eq!(q.prepared().unwrap(), m.prepared.len());
        prop_assert_eq!(q.in_flight().unwrap(), m.in_flight.len());
    }
    let drained = q.close(true).unwrap();
    prop_assert_eq!(drained.len(), m.prepared.len() + m.in_flight.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("URINGQ_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_op_sequences_keep_the_books(
        steps in proptest::collection::vec(step(), 1..120),
        sq_log in 0u32..4,
        cq_extra in 0u32..5,
    ) {
        let sq = 1 << sq_log;
        run(steps, sq, sq + cq_extra)?;
    }
}
