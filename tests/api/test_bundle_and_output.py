"""Client-side pieces of `wavectl augment`: layer packing and YAML output (pure, local files)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from wave_proxy.cli.augment import to_yaml
from wave_proxy.cli.bundle import BundleError, data_layer, load_layer, pack_directory


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin/run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "bin/run.sh").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc/tool.conf").write_text("x=1\n")
    return root


def test_directory_packing_ignores_timestamps_and_keeps_exec_bits(tmp_path: Path) -> None:
    first = pack_directory(_tree(tmp_path / "a"))
    second_root = _tree(tmp_path / "b")
    os.utime(second_root / "etc/tool.conf", (1, 1))
    assert pack_directory(second_root) == first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        modes = {m.name: m.mode for m in tar.getmembers() if m.isfile()}
    assert modes == {"bin/run.sh": 0o755, "etc/tool.conf": 0o644}


def test_symlinks_in_a_directory_layer_are_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    (root / "bin/link").symlink_to("run.sh")
    with pytest.raises(BundleError, match="bin/link is not a regular file"):
        pack_directory(root)


def test_plain_tar_is_gzipped_and_targz_kept_as_is(tmp_path: Path) -> None:
    packed = pack_directory(_tree(tmp_path / "a"))
    (tmp_path / "layer.tar.gz").write_bytes(packed)
    assert load_layer(tmp_path / "layer.tar.gz") == packed
    plain = tmp_path / "layer.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "a" / "etc", arcname="etc")
    entry = data_layer(load_layer(plain), plain)
    assert entry["location"].startswith("data:H4sI")  # base64 of a gzip header


def test_a_file_that_is_no_tar_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a layer\n")
    with pytest.raises(BundleError, match=r"not a directory, tar or \.tar\.gz"):
        load_layer(junk)


def test_yaml_output_reads_back_as_the_same_data() -> None:
    value = {
        "targetImage": "host:9090/wt/abc/library/busybox:1",
        "platforms": [
            {"platform": "linux/amd64", "layersAdded": [{"digest": "sha256:x", "size": 3}]}
        ],
        "configChanges": {"Env": {"from": None, "to": ["A=1", "B: 2"]}},
        "empty": [],
        "flag": True,
    }
    assert yaml.safe_load(to_yaml(value)) == value
