#!/usr/bin/env bash
# Generates the seed corpora of every fuzz target into fuzz/corpus/<target>/ (not committed:
# the generator is). Real binaries of this machine are read when present.
set -euo pipefail
cd "$(dirname "$0")"
cargo run --quiet --release --example seed -- "${1:-corpus}"
