"""The layer tarballs: reproducible bytes, a clean file list, a descriptor that matches."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from wave_proxy.layerbuild import ARCHES, lockfile
from wave_proxy.layerbuild.arch import elf_machine
from wave_proxy.layerbuild.builder import LayerInputs

EXECUTABLES = {".fusion/bin/python3", "usr/bin/fusion"}
MAX_GZIP_SIZE = 15 * 2**20
NOT_SHIPPED = ("tkinter/", "idlelib/", "test/", "unittest/", "lib2to3/", "ensurepip/", "pydoc")


@functools.cache
def _unpacked(tarball: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(tarball) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar}


def members(layer) -> list[tarfile.TarInfo]:
    return [info for info, _ in _unpacked(layer.tarball).values()]


def read(layer, name: str) -> bytes:
    return _unpacked(layer.tarball)[name][1]


@pytest.fixture(params=sorted(ARCHES))
def layer(request, layers):
    return layers[request.param]


def test_two_builds_from_the_same_inputs_are_byte_identical(layers, rebuilt_layers):
    for arch, first in layers.items():
        again = rebuilt_layers[arch]
        assert first.tarball.read_bytes() == again.tarball.read_bytes()
        assert first.descriptor.read_bytes() == again.descriptor.read_bytes()


def test_descriptor_is_a_wave_container_config_matching_the_tarball(layer):
    doc = json.loads(layer.descriptor.read_text())
    data = layer.tarball.read_bytes()
    assert doc["entrypoint"] == ["/usr/bin/fusion"]
    assert doc["env"] == []
    (entry,) = doc["layers"]
    assert entry["location"] == layer.tarball.name
    assert entry["gzipSize"] == len(data)
    assert entry["gzipDigest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert entry["tarDigest"] == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()


def test_gzip_header_has_no_file_name_and_no_timestamp(layer):
    header = layer.tarball.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0, "no FNAME/FCOMMENT/FEXTRA flags"
    assert header[4:8] == b"\0\0\0\0", "mtime 0"


def test_entries_are_sorted_and_owned_by_root_with_the_locked_mtime(layer):
    epoch = lockfile.load(LayerInputs.from_repo().lock_path).source_date_epoch
    entries = members(layer)
    assert [m.name for m in entries] == sorted(m.name for m in entries)
    for m in entries:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
        assert m.mtime == epoch, m.name
        assert not m.pax_headers, m.name


def test_tar_is_plain_ustar_without_pax_records(layer):
    raw = gzip.decompress(layer.tarball.read_bytes())
    headers = [
        raw[offset : offset + 512]
        for offset in range(0, len(raw) - 512, 512)
        if raw[offset + 257 : offset + 262] == b"ustar"
    ]
    assert len(headers) == len(members(layer)), "one header per entry: no pax or GNU records"
    for block in headers:
        assert block[257:265] == b"ustar\x0000", "POSIX ustar, not GNU tar"
        assert block[156:157] in (b"0", b"5"), "only regular files and directories"


def test_only_the_fusion_prefix_the_launcher_and_the_mountpoint_are_shipped(layer):
    assert {"usr/bin/fusion", "fusion", ".fusion/bin/python3"} <= {m.name for m in members(layer)}
    for m in members(layer):
        assert m.name in (
            "usr",
            "usr/bin",
            "usr/bin/fusion",
            "fusion",
            ".fusion",
        ) or m.name.startswith(".fusion/")
        assert m.isdir() or m.isfile(), m.name


def test_the_mountpoint_is_an_empty_directory_anyone_may_enter(layer):
    fusion = next(m for m in members(layer) if m.name == "fusion")
    assert fusion.isdir() and fusion.mode == 0o755


def test_modes_are_fixed(layer):
    loader = f".fusion/lib/{layer.arch.loader}"
    for m in members(layer):
        executable = m.isdir() or m.name in (*EXECUTABLES, loader)
        assert m.mode == (0o755 if executable else 0o644), m.name


def test_compressed_size_is_at_most_15_mib(layer):
    assert layer.gzip_size <= MAX_GZIP_SIZE


def test_binaries_are_elf_files_of_the_layer_architecture(layer):
    elves = [
        m.name
        for m in members(layer)
        if m.isfile() and (m.name in EXECUTABLES or ".so" in m.name.rsplit("/", 1)[-1])
    ]
    assert len(elves) > 10
    for name in elves:
        assert elf_machine(read(layer, name)[:64]) == layer.arch.elf_machine, name


def test_interpreter_uses_the_bundled_loader_and_rpath(layer, tmp_path):
    python = tmp_path / "python3"
    python.write_bytes(read(layer, ".fusion/bin/python3"))

    def patchelf(*args: str) -> str:
        return subprocess.run(
            ["patchelf", *args, str(python)], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert patchelf("--print-interpreter") == f"/.fusion/lib/{layer.arch.loader}"
    assert patchelf("--print-rpath") == "/.fusion/lib"
    dynamic = subprocess.run(
        ["readelf", "-d", str(python)], capture_output=True, text=True, check=True
    )
    assert "(RPATH)" in dynamic.stdout and "(RUNPATH)" not in dynamic.stdout


def test_launcher_is_a_static_executable(layer, tmp_path):
    shim = tmp_path / "fusion"
    shim.write_bytes(read(layer, "usr/bin/fusion"))
    headers = subprocess.run(
        ["readelf", "-h", "-l", "-d", str(shim)], capture_output=True, text=True, check=True
    ).stdout
    assert "EXEC (Executable file)" in headers, "an ELF executable, not a shared object"
    assert "INTERP" not in headers, "no program interpreter (dynamic loader)"
    assert "There is no dynamic section" in headers, "no shared libraries needed"


def test_stdlib_and_client_are_precompiled_with_unchecked_hashes(layer):
    archive = zipfile.ZipFile(io.BytesIO(read(layer, ".fusion/lib/python311.zip")))
    pycs = [(n, archive.read(n)) for n in archive.namelist()]
    pycs += [(m.name, read(layer, m.name)) for m in members(layer) if m.name.endswith(".pyc")]
    assert any("fusion_client/__init__.pyc" in name for name, _ in pycs)
    for name, data in pycs:
        assert name.endswith(".pyc"), "no sources shipped"
        assert int.from_bytes(data[4:8], "little") == 0b01, f"{name}: unchecked-hash pyc"


def test_tools_tests_and_guis_are_left_out_of_the_stdlib(layer):
    names = zipfile.ZipFile(io.BytesIO(read(layer, ".fusion/lib/python311.zip"))).namelist()
    assert "ssl.pyc" in names and "http/client.pyc" in names
    assert not [n for n in names if n.startswith(NOT_SHIPPED)]
