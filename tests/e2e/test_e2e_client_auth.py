"""--htpasswd with real clients: skopeo copies with `--src-creds` (the token flow) and is
refused without; a proxy holding private upstream credentials serves them only to its users."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import need_binary
from tests.support.images import PushedImage, Shapes
from tests.support.proxy import HTPASSWD_NAME, Proxy, proxy_running
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(300)
USER, PASSWORD = "bob", "pull-pw-1"


@pytest.fixture(scope="module")
def guarded_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    shapes: Shapes,
    htpasswd_upstream: Registry,
    htpasswd_image: PushedImage,
) -> Iterator[Proxy]:
    """Serves docker.io and a private upstream (with --registry-auth) to htpasswd users only."""
    workdir = tmp_path_factory.mktemp("guarded")
    users = workdir / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(users), USER, PASSWORD], check=True)
    creds = htpasswd_upstream.credentials
    assert creds is not None
    args = ["--registry", f"docker.io={upstream.url}"]
    args += ["--registry", f"{HTPASSWD_NAME}={htpasswd_upstream.url}"]
    args += ["--registry-auth", f"{HTPASSWD_NAME}={creds.username}:{creds.password}"]
    args += ["--htpasswd", str(users)]
    with proxy_running(workdir, args) as proxy:
        yield proxy


def copy(proxy: Proxy, reference: str, dest: Path, *creds: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [need_binary("skopeo"), "copy", "--src-tls-verify=false", *creds,
         f"docker://{proxy.host}/{reference}", f"oci:{dest}:x"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_skopeo_with_src_creds_copies_a_private_image(
    guarded_proxy: Proxy, htpasswd_image: PushedImage, tmp_path: Path
) -> None:
    reference = f"{HTPASSWD_NAME}/{htpasswd_image.reference}"
    result = copy(guarded_proxy, reference, tmp_path / "out", f"--src-creds={USER}:{PASSWORD}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("creds", [(), (f"--src-creds={USER}:wrong",)], ids=["none", "wrong"])
def test_skopeo_without_valid_credentials_is_refused_clearly(
    guarded_proxy: Proxy, htpasswd_image: PushedImage, tmp_path: Path, creds: tuple[str, ...]
) -> None:
    reference = f"{HTPASSWD_NAME}/{htpasswd_image.reference}"
    result = copy(guarded_proxy, reference, tmp_path / "out", *creds)
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "401" in result.stderr
    assert not (tmp_path / "out" / "index.json").exists()
