"""--tls-cert/--tls-key: HTTPS on the proxy's port, the pair reloaded on SIGHUP without
dropping connections, and skopeo pulling over it with the CA in its cert dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import need_binary, wait_until
from tests.support.images import Shapes
from tests.support.proxy import proxy_running, upstream_args
from tests.support.registry import Registry
from tests.support.tls import self_signed_cert
from wave_proxy.cli import main

pytestmark = pytest.mark.timeout(180)


def new_pair(directory: Path) -> tuple[Path, Path]:
    directory.mkdir()
    return self_signed_cert(directory)


def accepted(url: str, ca: Path) -> bool:
    try:
        return requests.get(url, verify=str(ca), timeout=5).status_code == 200
    except requests.exceptions.SSLError:
        return False


def test_https_is_served_and_sighup_reloads_the_pair_without_dropping_connections(
    tmp_path: Path, upstream: Registry, shapes: Shapes
) -> None:
    first_key, first_cert = new_pair(tmp_path / "first")
    live_key, live_cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    shutil.copy(first_key, live_key)
    shutil.copy(first_cert, live_cert)
    args = [*upstream_args({"docker.io": upstream})]
    args += ["--tls-cert", str(live_cert), "--tls-key", str(live_key)]
    with proxy_running(tmp_path / "proxy", args) as proxy:
        assert proxy.url.startswith("https://")
        assert accepted(f"{proxy.url}/v2/", first_cert)
        kept = requests.Session()  # its connection stays open
        assert kept.get(f"{proxy.url}/v2/", verify=str(first_cert), timeout=5).status_code == 200

        second_key, second_cert = new_pair(tmp_path / "second")
        shutil.copy(second_key, live_key)
        shutil.copy(second_cert, live_cert)
        assert proxy.service is not None
        os.kill(proxy.service.proc.pid, signal.SIGHUP)
        wait_until(lambda: accepted(f"{proxy.url}/v2/", second_cert), 20, "the new certificate")
        assert not accepted(f"{proxy.url}/v2/", first_cert)
        # the connection opened before the reload is not dropped: no new handshake needed
        assert kept.get(f"{proxy.url}/v2/", verify=str(first_cert), timeout=5).status_code == 200

        cert_dir = tmp_path / "certs"
        cert_dir.mkdir()
        shutil.copy(second_cert, cert_dir / "ca.crt")
        result = subprocess.run(
            [need_binary("skopeo"), "inspect", "--raw", "--cert-dir", str(cert_dir),
             f"docker://{proxy.host}/library/busybox:1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "TLS certificate reloaded" in proxy.log()


def test_a_tls_pair_that_does_not_load_is_refused_at_start_in_one_line(capsys, tmp_path: Path):
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0"]
    args += ["--no-fusion", "--tls-cert", str(tmp_path / "bad.pem")]
    args += ["--tls-key", str(tmp_path / "bad.pem")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot use TLS certificate" in err and len(err.strip().splitlines()) == 1
