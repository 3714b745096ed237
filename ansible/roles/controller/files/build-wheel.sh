#!/bin/bash
# vm-boot-harness: build the harness wheel from a checkout, reproducibly (same sources give
# the same bytes), into OUT_DIR. Prints "built PATH" or "unchanged PATH".
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SOURCE_DIR OUT_DIR PYTHON" >&2; exit 2; }
src=$(cd "$1" && pwd) out=$2 python=$3
[ -f "$src/pyproject.toml" ] || { echo "$src: not a vm-boot-harness checkout" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src" "$tmp/dist"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  # tracked and untracked files, not what .gitignore leaves out (build/, dist/, reports/)
  git -C "$src" ls-files -z -co --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$src/$f" ] && printf '%s\0' "$f"; done \
    | tar -C "$src" --null -T - -cf - | tar -C "$tmp/src" -xf -
else
  tar -C "$src" --exclude=./.git --exclude=./build --exclude=./dist --exclude=./reports \
      --exclude=./.venv -cf - . | tar -C "$tmp/src" -xf -
fi
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel -q --disable-pip-version-check --no-deps \
  -w "$tmp/dist" "$tmp/src" >&2
whl=$(ls "$tmp"/dist/*.whl)
mkdir -p "$out"
dest="$out/$(basename "$whl")"
if cmp -s "$whl" "$dest"; then
  echo "unchanged $dest"
else
  cp "$whl" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
  echo "built $dest"
fi
