/work/wt/aioperf/target-base/release/deps/pyo3_macros-2bdfefbf9efd91dd.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-macros-0.28.3/src/lib.rs

/work/wt/aioperf/target-base/release/deps/libpyo3_macros-2bdfefbf9efd91dd.so: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-macros-0.28.3/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-macros-0.28.3/src/lib.rs:

# env-dep:CARGO_PKG_VERSION=0.28.3
