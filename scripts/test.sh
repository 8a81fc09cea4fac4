#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, then runs every test of the workspace.
# Run as root: the tests mount overlayfs, create namespaces and cgroups, and start real registries.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root (tests mount filesystems and create namespaces and cgroups)" >&2
  exit 1
fi
scripts/test-deps.sh
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
