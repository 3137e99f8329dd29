/work/wt/aioperf/target-base/release/deps/uringq.d: src/lib.rs src/binding/mod.rs src/binding/args.rs src/binding/batch.rs src/binding/buffer.rs src/binding/completion.rs src/binding/errors.rs src/binding/queue.rs src/binding/reap.rs src/binding/requests.rs src/binding/stat.rs src/binding/whole_files.rs src/core/mod.rs src/core/batch.rs src/core/chains.rs src/core/emulate.rs src/core/error.rs src/core/eventfd.rs src/core/files.rs src/core/fork.rs src/core/ops.rs src/core/probe.rs src/core/queue.rs src/core/ring.rs src/core/slab.rs src/core/state.rs src/core/whole_files/mod.rs src/core/whole_files/engine.rs src/core/whole_files/follow_up.rs src/core/whole_files/paths.rs

/work/wt/aioperf/target-base/release/deps/liburingq.so: src/lib.rs src/binding/mod.rs src/binding/args.rs src/binding/batch.rs src/binding/buffer.rs src/binding/completion.rs src/binding/errors.rs src/binding/queue.rs src/binding/reap.rs src/binding/requests.rs src/binding/stat.rs src/binding/whole_files.rs src/core/mod.rs src/core/batch.rs src/core/chains.rs src/core/emulate.rs src/core/error.rs src/core/eventfd.rs src/core/files.rs src/core/fork.rs src/core/ops.rs src/core/probe.rs src/core/queue.rs src/core/ring.rs src/core/slab.rs src/core/state.rs src/core/whole_files/mod.rs src/core/whole_files/engine.rs src/core/whole_files/follow_up.rs src/core/whole_files/paths.rs

src/lib.rs:
src/binding/mod.rs:
src/binding/args.rs:
src/binding/batch.rs:
src/binding/buffer.rs:
src/binding/completion.rs:
src/binding/errors.rs:
src/binding/queue.rs:
src/binding/reap.rs:
src/binding/requests.rs:
src/binding/stat.rs:
src/binding/whole_files.rs:
src/core/mod.rs:
src/core/batch.rs:
src/core/chains.rs:
src/core/emulate.rs:
src/core/error.rs:
src/core/eventfd.rs:
src/core/files.rs:
src/core/fork.rs:
src/core/ops.rs:
src/core/probe.rs:
src/core/queue.rs:
src/core/ring.rs:
src/core/slab.rs:
src/core/state.rs:
src/core/whole_files/mod.rs:
src/core/whole_files/engine.rs:
src/core/whole_files/follow_up.rs:
src/core/whole_files/paths.rs:
