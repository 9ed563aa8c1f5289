"""Debian keeps one version per suite: a lock that pins a version the mirror no longer has
still builds, with the mirror's version, one warning naming the package, and a record of what
was used next to the layer and inside it."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tarfile

from tests.layer.conftest import DEB_CACHE
from wave_proxy.layerbuild import build_layers

GONE = "0.0.1-gone"


def test_a_pinned_version_the_mirror_lacks_falls_back_to_the_mirrors_and_is_recorded(
    layer_inputs, native, tmp_path, caplog
):
    lock = json.loads(layer_inputs.lock_path.read_text())
    pin = next(p for p in lock["packages"][native.name] if p["package"] == "libffi8")
    current = pin["version"]
    pin.update(version=GONE, filename=f"libffi8_{GONE}_{native.name}.deb", sha256="0" * 64)
    lock_path = tmp_path / "debian.lock.json"
    lock_path.write_text(json.dumps(lock))
    cache = tmp_path / "cache"
    shutil.copytree(DEB_CACHE, cache, ignore=shutil.ignore_patterns(f"libffi8_*_{native.name}.deb"))
    inputs = dataclasses.replace(layer_inputs, lock_path=lock_path)

    with caplog.at_level(logging.WARNING, logger="wave_proxy.layerbuild"):
        (built,) = build_layers([native], tmp_path / "out", cache, inputs)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"libffi8 {GONE} ")
    used = json.loads((tmp_path / "out" / f"{built.tarball.name[:-7]}.packages.json").read_text())
    assert used["libffi8"] == {"version": current, "pinned": GONE}
    assert used["libc6"] == {
        "version": next(
            p["version"] for p in lock["packages"][native.name] if p["package"] == "libc6"
        )
    }
    with tarfile.open(built.tarball) as tar:
        info = json.load(tar.extractfile(".fusion/layer.json"))
    assert info["packages"]["libffi8"] == current
    assert info["substituted"] == {"libffi8": {"version": current, "pinned": GONE}}
