//! The plain-Rust core of uringq: an io_uring queue with an op table, an eventfd waiter,
//! a fixed-file table, a kernel probe, a batch engine and a whole-file engine. No PyO3
//! types live here, so `cargo test` exercises it directly.

mod batch;
mod chains;
mod emulate;
mod error;
mod eventfd;
mod files;
mod fork;
#[cfg(test)]
mod fuzz;
mod nowait;
mod ops;
#[cfg(test)]
mod ops_tests;
mod probe;
mod queue;
mod ring;
mod slab;
mod state;
#[cfg(test)]
mod testing;
mod whole_files;

pub use batch::{Batch, BatchCache, BatchDir, BatchError, Registered};
pub use error::{Error, WaitError};
pub use eventfd::EventFd;
pub use fork::fork_generation;
pub use nowait::read_rest;
pub use ops::{timespec, Link, Op, Request, AT_FDCWD};
pub use probe::{probe, probed_opcodes, strerror, Unsupported};
pub use queue::{Queue, MAX_CQ_ENTRIES, MAX_SQ_ENTRIES};
pub use state::{Done, Extra};
pub use whole_files::{
    mode as whole_files_mode, read_files, write_files, Check, CheckFn, Data, EmbeddedNul, Finished,
    Mode, Paths, ReadSink, Tuning,
};
