//! uringq: fast, safe asynchronous file I/O for Python on Linux.
//!
//! [`core`] is plain Rust (ring, op table, waiter, probe, batch engine) and is what
//! `cargo test` covers; [`binding`] is the thin PyO3 layer that becomes `uringq._native`.

pub mod binding;
pub mod core;

use pyo3::prelude::*;

/// The `uringq._native` extension module: registers classes and functions, nothing else.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    binding::register(m)
}
