#!/usr/bin/env bash
# Set up everything and run the main job on the local lab: real aarch64 guests booted
# under QEMU through libvirt on this machine, one host stalling a vCPU on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if .venv/bin/harness lab --help >/dev/null 2>&1; then
  .venv/bin/harness lab setup
  exec .venv/bin/harness run matrices/local-demo.yaml "$@"
fi
exec .venv/bin/harness plan matrices/eas-66611.yaml
