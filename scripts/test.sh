#!/usr/bin/env bash
# The whole test suite: installs what it needs, runs the gates (format, lint, types,
# stubs, zizmor on the GitHub workflows), then cargo test (the Rust core), pytest
# (every available provider) and pytest again with io_uring blocked by a seccomp filter
# (the threadpool fallback alone).
# The README's "Run the tests" command and .ci/run both call exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "install uringq (editable) with its test and dev tools"
python3 -m pip install -q -e '.[dev]'

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
step "ruff check / ruff format --check"
python3 -m ruff check python tests scripts
python3 -m ruff format --check python tests scripts
step "mypy --strict python/ (and the public API as users call it)"
python3 -m mypy --strict python/uringq tests/typing
step "stubtest uringq._native"
python3 -m mypy.stubtest uringq._native
step "zizmor --offline .github/workflows/ (workflow security audit)"
# The wheel installs a binary, not a module: use the one beside this python3.
zizmor="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/zizmor"
[[ -x $zizmor ]] || zizmor=zizmor
"$zizmor" --offline .github/workflows/
step "cargo test"
cargo test --quiet
step "pytest"
python3 -m pytest -q "$@"
case "$(uname -m)" in
    x86_64 | aarch64)
        step "pytest with io_uring blocked by seccomp (EPERM, as in Docker): the fallback carries it"
        python3 scripts/without_io_uring.py --errno EPERM -- python3 -m pytest -q "$@"
        ;;
esac
