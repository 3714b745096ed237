#!/usr/bin/env bash
# Prepare this Debian 12 machine and the project's virtualenv (.venv). Idempotent:
# installs only what is missing, so the second run takes seconds.
#   scripts/bootstrap.sh            runtime (demo)
#   scripts/bootstrap.sh --test     plus what the test suite needs (browser, linters)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

pkgs=(python3-venv python3-dev gcc pkg-config libvirt-dev libvirt-clients
      libvirt-daemon libvirt-daemon-driver-qemu qemu-system-arm qemu-utils
      openssh-client openssh-server cpio iproute2 zstd xz-utils
      # the rehearsal lab (docs/lab-rehearsal.md): the distro image build (mmdebstrap
      # under qemu-user, disk assembled without mounting) and the rehearsal host
      mmdebstrap qemu-user-static arch-test qemu-efi-aarch64 mtools dosfstools fdisk
      e2fsprogs dnsmasq-base iptables)
if (( want_test )); then
  # chromium: report pages checked in a real browser; libxml2-utils: xmllint, which
  # virt-xml-validate runs; qemu-efi-aarch64 + libvirt-daemon-system: the packages the
  # Ansible kvm_host role asserts on its (namespace, offline) test host; postgresql-15:
  # the store tests start a throw-away server of their own (harness/testing/pgserver.py)
  pkgs+=(chromium libxml2-utils qemu-efi-aarch64 libvirt-daemon-system postgresql-15)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
extras="."
(( want_test )) && extras=".[dev]"
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-$want_test"
if [[ ! -e "$stamp" ]]; then
  echo "bootstrap: installing the harness into .venv ($extras)"
  # the build backend's notes (editable-install caveats) go to a log, shown on failure
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e "$extras"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: installing the harness failed (log above, also in $log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
