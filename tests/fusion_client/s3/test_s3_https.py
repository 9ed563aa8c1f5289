"""HTTPS endpoints: certificate verification against AWS_CA_BUNDLE, and UNSIGNED-PAYLOAD
bodies (the https default) accepted by a signature-checking server (s3rver with TLS)."""

from __future__ import annotations

import socket
import ssl
import sys
from collections.abc import Iterator

import pytest

from fusion_client.s3 import S3Client, S3ConnectionError
from fusion_client.store import pool
from tests.support.s3servers import S3Server, start_s3rver
from tests.support.tls import self_signed_cert

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    base = tmp_path_factory.mktemp("s3rver-tls")
    (base / "data").mkdir()
    server = start_s3rver(base, base / "data", tls=self_signed_cert(base))
    try:
        yield server
    finally:
        assert server.service is not None
        server.service.stop()


def test_https_with_ca_bundle_and_unsigned_payload(tls_s3rver: S3Server):
    client = S3Client.from_env(tls_s3rver.env())
    assert not client.config.payload_signed(client.config.custom_endpoint())
    bucket = tls_s3rver.new_bucket("tls")
    data = b"over tls " * 300_000  # > 1 MiB: sent as UNSIGNED-PAYLOAD
    etag = client.put_object(bucket, "k", data)
    buf = bytearray(len(data))
    assert client.get_range_into(bucket, "k", 0, memoryview(buf), if_match=etag) == len(data)
    assert buf == data


def test_untrusted_certificate_fails_at_once_with_a_clear_error(tls_s3rver: S3Server):
    client = S3Client.from_env(tls_s3rver.env(AWS_CA_BUNDLE="", FUSION_S3_RETRY_BASE_DELAY="5"))
    with pytest.raises(S3ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.head_bucket("any-bucket")
    assert client.stats.retries == 0


@pytest.mark.timeout(20)  # with the 30 s read timeout in play this would take minutes
def test_a_server_that_never_answers_the_handshake_fails_at_the_connect_timeout():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never speaks TLS
    try:
        env = {
            "AWS_ENDPOINT_URL": f"https://127.0.0.1:{silent.getsockname()[1]}",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "FUSION_S3_CONNECT_TIMEOUT": "0.2",
            "FUSION_S3_MAX_ATTEMPTS": "3",
            "FUSION_S3_RETRY_BASE_DELAY": "0.01",
        }
        client = S3Client.from_env(env)
        with pytest.raises(S3ConnectionError, match="timed out"):
            client.head_bucket("b")
        assert client.stats.retries == 2
    finally:
        silent.close()


def test_an_image_without_ca_certificates_falls_back_to_the_bundle_beside_the_runtime(
    tmp_path, monkeypatch
):
    bundle = tmp_path / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("")
    nowhere = ssl.DefaultVerifyPaths(
        str(tmp_path / "no.pem"), str(tmp_path / "no.d"), "", "", "", ""
    )
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: nowhere)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert pool._bundled_ca_when_image_has_none() == str(bundle)


def test_the_system_ca_certificates_win_over_the_bundle(tmp_path, monkeypatch):
    system = tmp_path / "system.pem"
    system.write_text("")
    paths = ssl.DefaultVerifyPaths(str(system), str(tmp_path / "no.d"), "", "", "", "")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    assert pool._bundled_ca_when_image_has_none() is None
