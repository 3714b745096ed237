from __future__ import annotations

import json
from pathlib import Path

from harness.lab import debs
from harness.lab.guest import VARIANTS
from harness.lab.paths import Layout
from harness.lab.setup import BUILDER_VERSION, FLAVOURS, _complete, read_manifest

APT_CACHE = """\
linux-image-arm64:arm64
  Depends: linux-image-6.1.0-56-arm64:arm64
 |Depends: linux-image-6.1.0-55-arm64:arm64
  Recommends: apparmor
"""


def test_parse_depends() -> None:
    assert debs.parse_depends(APT_CACHE) == ["linux-image-6.1.0-56-arm64",
                                             "linux-image-6.1.0-55-arm64"]
    assert debs.parse_depends("") == []


def _built(tmp_path: Path) -> tuple[Layout, dict[str, object]]:
    lay = Layout(tmp_path)
    guests = {}
    for fl in FLAVOURS:
        g = lay.guest(fl)
        g.mkdir(parents=True)
        for n in ("vmlinuz", *(f"initrd-{v.name}.cpio" for v in VARIANTS)):
            (g / n).write_bytes(b"x")
        guests[fl] = {"kernel": str(g / "vmlinuz"), "release": "r",
                      "initrd": {v.name: str(g / f"initrd-{v.name}.cpio") for v in VARIANTS}}
    (lay.keys).mkdir()
    (lay.keys / "id_ed25519").write_text("k")
    (lay.libvirt / "etc").mkdir(parents=True)
    (lay.libvirt / "etc/qemu.conf").write_text("")
    return lay, {"builder": BUILDER_VERSION, "guests": guests}


def test_complete_only_when_every_file_is_there_and_builder_matches(tmp_path: Path) -> None:
    lay, manifest = _built(tmp_path)
    assert _complete(lay, manifest)
    assert not _complete(lay, {**manifest, "builder": BUILDER_VERSION - 1})
    (lay.guest(FLAVOURS[0]) / "initrd-nossh.cpio").unlink()
    assert not _complete(lay, manifest)
    # a variant added since the lab was built (cpulocked): not complete, setup builds it
    fewer = {k: {**g, "initrd": {"ssh": g["initrd"]["ssh"]}}  # type: ignore[index]
             for k, g in manifest["guests"].items()}  # type: ignore[attr-defined]
    assert not _complete(lay, {**manifest, "guests": fewer})


def test_read_manifest_tolerates_garbage(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    assert read_manifest(lay) == {}
    lay.manifest.write_text("{not json")
    assert read_manifest(lay) == {}
    lay.manifest.write_text(json.dumps([1, 2]))
    assert read_manifest(lay) == {}
