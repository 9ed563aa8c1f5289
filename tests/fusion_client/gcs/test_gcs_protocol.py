"""GCS protocol behaviour the emulator cannot show (gcs_double.py beside this file is strict where
fake-gcs-server is lax): resumable uploads resume from the byte GCS reports after a failure,
chunks are 256 KiB multiples, and reads pinned to a generation fail once it is replaced."""

from __future__ import annotations

import os

import pytest

from fusion_client.gcs.client import GcsClient
from fusion_client.store import FileRange, PreconditionFailed
from tests.fusion_client.conftest import FAST_RETRIES
from tests.fusion_client.gcs.gcs_double import ALIGN, GcsDouble

MiB = 2**20


@pytest.fixture
def double():
    with GcsDouble() as double:
        yield double


@pytest.fixture
def client(double):
    client = GcsClient.from_env({"STORAGE_EMULATOR_HOST": double.endpoint, **FAST_RETRIES})
    yield client
    client.close()


def upload(client: GcsClient, tmp_path, data: bytes, part: int) -> str:
    staging = tmp_path / "staging"
    staging.write_bytes(data)
    fd = os.open(staging, os.O_RDONLY)
    try:
        upload_id = client.create_multipart_upload("b", "obj")
        parts = []
        for number, offset in enumerate(range(0, len(data), part), start=1):
            body = FileRange(fd, offset, min(part, len(data) - offset))
            parts.append((number, client.upload_part("b", "obj", upload_id, number, body)))
        return client.complete_multipart_upload("b", "obj", upload_id, parts)
    finally:
        os.close(fd)


def test_a_chunk_cut_mid_way_resumes_from_the_byte_gcs_reports(client, double, tmp_path):
    data = os.urandom(2 * MiB + 1000)
    double.cut_next_chunk = True
    upload(client, tmp_path, data, part=MiB)
    assert double.objects["obj"][0] == data
    query = double.log.index("QUERY")
    # GCS kept 512 KiB of the first 1 MiB chunk: the resent request starts right there.
    assert double.log[query + 1] == f"PUT bytes {2 * ALIGN}-{MiB - 1}/*"


def test_only_the_last_chunk_is_not_a_multiple_of_256_kib(client, double, tmp_path):
    data = os.urandom(MiB + 1000)
    upload(client, tmp_path, data, part=MiB // 2)
    assert double.log == [
        f"PUT bytes 0-{MiB // 2 - 1}/*",
        f"PUT bytes {MiB // 2}-{MiB - 1}/*",
        f"PUT bytes {MiB}-{MiB + 999}/{MiB + 1000}",
    ]
    assert double.objects["obj"][0] == data


def test_a_read_pinned_to_a_generation_fails_once_the_object_is_replaced(client, double):
    first = double.put("obj", b"1" * 1000)
    buf = memoryview(bytearray(10))
    assert client.get_range_into("b", "obj", 0, buf, if_match=str(first)) == 10
    double.put("obj", b"2" * 1000)
    with pytest.raises(PreconditionFailed):
        client.get_range_into("b", "obj", 0, buf, if_match=str(first))
    assert double.log[-1] == f"GET ifGenerationMatch={first}"
