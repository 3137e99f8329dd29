//! The plain-Rust core of uringq: an io_uring queue with an op table, an eventfd waiter,
//! a fixed-file table, a kernel probe, a batch engine and a whole-file engine. No PyO3
//! types live here, so `cargo test` exercises it directly.

mod batch;
mod error;
mod eventfd;
mod files;
mod fork;
#[cfg(test)]
mod fuzz;
mod ops;
mod probe;
mod queue;
mod ring;
mod whole_files;

pub use batch::{Batch, BatchCache, BatchDir, BatchError, Registered};
pub use error::{Error, WaitError};
pub use eventfd::EventFd;
pub use fork::fork_generation;
pub use ops::Op;
pub use probe::{probe, strerror, supported_opcodes, Unsupported};
pub use queue::{Done, Queue, MAX_CQ_ENTRIES, MAX_SQ_ENTRIES};
pub use whole_files::{
    mode as whole_files_mode, read_files, write_files, Check, CheckFn, Data, EmbeddedNul, Finished,
    Mode, Paths, ReadSink, Tuning,
};
