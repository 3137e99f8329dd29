//! The plain-Rust core of uringq: an io_uring queue with an op table, an eventfd waiter,
//! a fixed-file table, a kernel probe and a batch engine. No PyO3 types live here, so
//! `cargo test` exercises it directly.

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

pub use batch::{Batch, BatchCache, BatchDir, BatchError, Registered};
pub use error::{Error, WaitError};
pub use eventfd::EventFd;
pub use fork::fork_generation;
pub use ops::Op;
pub use probe::{probe, strerror, supported_opcodes, Unsupported};
pub use queue::{Done, Queue, MAX_CQ_ENTRIES, MAX_SQ_ENTRIES};
