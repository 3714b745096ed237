#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: system packages, .venv, the local
# lab (real arm64 kernels, the initramfs guest), linters, then pytest. Arguments go to
# pytest (e.g. scripts/test.sh tests/unit -q).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/harness lab setup
.venv/bin/ruff check harness tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
