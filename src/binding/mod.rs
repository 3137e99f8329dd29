//! The PyO3 layer: argument conversion, buffer pinning, GIL release and error mapping
//! over [`crate::core`].

mod aio;
mod args;
mod batch;
mod buffer;
mod completion;
mod errors;
mod open_file;
mod pool;
mod queue;
mod reap;
mod requests;
mod stat;
mod whole_files;

use pyo3::prelude::*;

use crate::core;

/// `probe() -> (available, reason)`.
#[pyfunction]
fn probe() -> (bool, Option<String>) {
    match core::probe() {
        Ok(()) => (true, None),
        Err(why) => (false, Some(why.reason)),
    }
}

/// Every io_uring opcode this kernel's probe reports: `(name, used by uringq)`.
#[pyfunction]
fn probed_opcodes() -> Vec<(String, bool)> {
    core::probed_opcodes()
}

/// How many times this process image has forked.
#[pyfunction]
fn fork_generation() -> u64 {
    core::fork_generation()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<completion::Completion>()?;
    m.add_class::<queue::NativeQueue>()?;
    m.add_function(wrap_pyfunction!(probe, m)?)?;
    m.add_function(wrap_pyfunction!(probed_opcodes, m)?)?;
    m.add_function(wrap_pyfunction!(fork_generation, m)?)?;
    m.add_function(wrap_pyfunction!(whole_files::read_files, m)?)?;
    m.add_function(wrap_pyfunction!(whole_files::write_files, m)?)?;
    m.add_function(wrap_pyfunction!(whole_files::whole_files_mode, m)?)?;
    m.add_function(wrap_pyfunction!(whole_files::read_files_rings, m)?)?;
    m.add_function(wrap_pyfunction!(open_file::_read_rest, m)?)?;
    // Start counting forks now, before anything can fork.
    core::fork_generation();
    Ok(())
}
