"""A blob replaced in Azure while a reader holds it open never mixes versions (Azurite honours
If-Match; fake-gcs-server ignores ifGenerationMatch, see test_gcs_protocol.py for GCS)."""

from __future__ import annotations

import errno
import os
import time

import pytest

from tests.fusion_client.conftest import mount_fusion

pytestmark = pytest.mark.fuse  # mounts through /dev/fuse

MiB = 2**20


@pytest.fixture(scope="module")
def azure_mount(azurite, tmp_path_factory):
    yield from mount_fusion(azurite, tmp_path_factory.mktemp("fusion-az-versions"))


def test_a_reader_never_mixes_versions_of_a_replaced_blob(azure_mount, azurite):
    container = azurite.new_bucket("versions")
    old, new = b"1" * (4 * MiB), b"2" * (4 * MiB)
    azurite.put(container, "data.bin", old)
    path = azure_mount.path(container, "data.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == old[:4096]
        azurite.put(container, "data.bin", new)
        with pytest.raises(OSError) as raised:  # a chunk not cached yet: If-Match fails
            os.pread(fd, 4096, 3 * MiB + 512 * 1024)
        assert raised.value.errno == errno.EIO
        assert os.pread(fd, 4096, 0) == old[:4096]
    finally:
        os.close(fd)
    time.sleep(0.3)  # past the metadata TTL: the next open sees the new version
    assert path.read_bytes() == new
