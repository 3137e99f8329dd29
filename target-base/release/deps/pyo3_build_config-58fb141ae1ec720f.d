/work/wt/aioperf/target-base/release/deps/pyo3_build_config-58fb141ae1ec720f.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/errors.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/impl_.rs /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config-file.txt /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config.txt

/work/wt/aioperf/target-base/release/deps/libpyo3_build_config-58fb141ae1ec720f.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/errors.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/impl_.rs /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config-file.txt /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config.txt

/work/wt/aioperf/target-base/release/deps/libpyo3_build_config-58fb141ae1ec720f.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/errors.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/impl_.rs /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config-file.txt /work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config.txt

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/errors.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-build-config-0.28.3/src/impl_.rs:
/work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config-file.txt:
/work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out/pyo3-build-config.txt:

# env-dep:CARGO_PKG_VERSION=0.28.3
# env-dep:OUT_DIR=/work/wt/aioperf/target-base/release/build/pyo3-build-config-4a5b3f7c9fefa5da/out
