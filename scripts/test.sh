#!/usr/bin/env bash
# The whole test suite: installs what it needs, then cargo test (Rust core) and pytest
# (every provider). README "Run the tests" and .ci/run both call exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test]'
cargo test --quiet
python3 -m pytest -q
