#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: system packages, .venv, the local
# lab (real arm64 kernels, the initramfs guest), linters, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
if .venv/bin/harness lab --help >/dev/null 2>&1; then
  .venv/bin/harness lab setup
fi
.venv/bin/ruff check harness tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
