#!/usr/bin/env bash
# Set up everything and run the main job on the local lab: real aarch64 guests booted
# under QEMU through libvirt on this machine, one host stalling a vCPU on purpose.
# Extra arguments go to `harness run` (e.g. --boots 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/harness lab setup
rc=0
.venv/bin/harness run matrices/local-demo.yaml "$@" || rc=$?
if [[ $rc -eq 1 ]]; then
  echo
  echo "demo: as intended, the stalling host's cells failed their expectation (vCPU offline)"
  echo "      and the clean host's cells are 'clean': no failure in their boots, with the rate"
  echo "      the boots can rule out (2 boots rule out little). Open the report above."
  exit 0
fi
exit $rc
