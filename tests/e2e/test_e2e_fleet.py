"""Three `wavectl serve` replicas on one redis-server and one S3 server (moto, behind a fault
proxy that can take it down): a cold blob is fetched from the upstream once per fleet, a replica
serves what another resolved with that replica and the upstream gone, clients can be redirected
to S3, and S3 going away only degrades the fleet until it returns.

skopeo verifies every digest it copies, so a copy that succeeds proves the bytes are right. The
images are small and random (new per test), so the upstream's access log counts their blobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import wait_until
from tests.support.dockerd import dockerd_running
from tests.support.faults import FaultProxy
from tests.support.images import ImageSpec, PushedImage, Pusher, tar_layer
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.redis import Redis, redis_running, redis_server  # noqa: F401
from tests.support.registry import Registry, registry_running
from tests.support.s3servers import S3Server, moto_s3  # noqa: F401
from tests.wave_proxy.api.helpers import skopeo

pytestmark = pytest.mark.timeout(300)

_databases = iter(range(6, 16))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """An upstream of this test alone, so its access log holds only this test's pulls."""
    with registry_running(tmp_path / "upstream") as upstream:
        yield upstream


@pytest.fixture
def s3(moto_s3: S3Server) -> Iterator[tuple[S3Server, FaultProxy, str]]:  # noqa: F811
    """The S3 server through a fault proxy (`.down = True` is S3 unreachable), and a bucket."""
    port = int(moto_s3.endpoint.rsplit(":", 1)[1])
    faults = FaultProxy(port)
    try:
        yield moto_s3, faults, moto_s3.new_bucket("fleet")
    finally:
        faults.close()


class Fleet:
    """Three replicas' settings; they reach S3 through the fault proxy unless `direct` (which
    large uploads need: the fault proxy stalls on multipart parts)."""

    def __init__(
        self,
        tmp: Path,
        registry: Registry,
        redis: Redis,
        s3: tuple,
        extra: list[str],
        direct: bool = False,
    ) -> None:
        server, faults, bucket = s3
        self.s3, self.faults, self.bucket = server, faults, bucket
        env = server.env() if direct else server.env(AWS_ENDPOINT_URL=faults.endpoint)
        args = [*upstream_args({"docker.io": registry}), "--store", redis.url(next(_databases))]
        args += ["--blob-store", f"s3://{bucket}/fleet", *extra]
        self.replicas = [Proxy(tmp / f"replica-{i}", args, env=env) for i in range(3)]

    def stored(self) -> set[str]:
        listing = self.s3.boto3_client().list_objects_v2(Bucket=self.bucket, Prefix="fleet/")
        return {
            o["Key"].rsplit("/", 2)[-2] + ":" + o["Key"].rsplit("/", 1)[-1]
            for o in listing.get("Contents", [])
        }


@pytest.fixture
def fleet(
    tmp_path: Path,
    registry: Registry,
    redis_server: Redis,  # noqa: F811
    s3: tuple,
) -> Iterator[Fleet]:
    with started(Fleet(tmp_path, registry, redis_server, s3, [])) as made:
        yield made


@contextlib.contextmanager
def started(fleet: Fleet) -> Iterator[Fleet]:
    try:
        for replica in fleet.replicas:
            replica.start()
        yield fleet
    finally:
        for replica in fleet.replicas:
            replica.stop()


def push_random_image(registry: Registry, repository: str, sizes_kib: list[int]) -> PushedImage:
    rng = random.Random()
    layers = tuple(
        tar_layer({f"data/{i}.bin": rng.randbytes(kib << 10)}, compresslevel=1)
        for i, kib in enumerate(sizes_kib)
    )
    return Pusher(registry).image(repository, "1", ImageSpec(layers, {"Cmd": ["true"]}))


def blob_digests(image: PushedImage) -> list[str]:
    manifest = image.manifest_json()
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def upstream_blob_gets(registry: Registry, digest: str) -> int:
    pattern = re.compile(rf'"GET /v2/[^ ]+/blobs/{re.escape(digest)} HTTP/[0-9.]+" 200 ')
    return len(pattern.findall(registry.service.log()))


def copy(replica: Proxy, image: str, destination: Path) -> None:
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{replica.host}/{image}", f"oci:{destination}"
    )


def test_three_replicas_pulling_at_once_fetch_each_blob_from_upstream_once(
    fleet: Fleet, registry: Registry, tmp_path: Path
) -> None:
    image = push_random_image(registry, "fleet/app", [4096, 2048, 1024])
    with ThreadPoolExecutor(3) as pool:
        copies = [
            pool.submit(copy, r, "fleet/app:1", tmp_path / f"pull-{i}")
            for i, r in enumerate(fleet.replicas)
        ]
        for done in copies:
            done.result()
    for digest in blob_digests(image):
        assert upstream_blob_gets(registry, digest) == 1, digest
    wait_until(lambda: set(blob_digests(image)) <= fleet.stored(), what="every blob in S3")


def test_a_replica_serves_what_another_resolved_with_that_replica_and_the_upstream_gone(
    fleet: Fleet, registry: Registry, tmp_path: Path
) -> None:
    first, second, _ = fleet.replicas
    push_random_image(registry, "fleet/gone", [1024, 512])
    copy(first, "fleet/gone:1", tmp_path / "first")
    digest = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{first.host}/fleet/gone:1")
    )["Digest"]
    wait_until(lambda: len(fleet.stored()) >= 3, what="the blobs to reach S3")
    first.stop()
    registry.stop()
    copy(second, f"fleet/gone@{digest}", tmp_path / "second")


def test_blob_redirect_sends_skopeo_and_docker_to_presigned_s3_urls(
    tmp_path: Path,
    registry: Registry,
    redis_server: Redis,  # noqa: F811
    s3: tuple,
) -> None:
    made = Fleet(tmp_path, registry, redis_server, s3, ["--blob-redirect"])
    replica = made.replicas[0]
    image = push_random_image(registry, "fleet/redirect", [1024])
    with proxy_running(replica.workdir, replica.args, env=replica.env) as proxy:
        copy(proxy, "fleet/redirect:1", tmp_path / "cold")  # fills S3 from upstream
        layer = blob_digests(image)[1]
        wait_until(lambda: layer in made.stored(), what="the layer to reach S3")
        answer = requests.get(
            f"{proxy.url}/v2/fleet/redirect/blobs/{layer}", allow_redirects=False, timeout=10
        )
        assert answer.status_code == 307
        assert answer.headers["Location"].startswith(f"http://127.0.0.1:{made.faults.port}/")
        copy(proxy, "fleet/redirect:1", tmp_path / "warm")
        with dockerd_running(insecure=[proxy.host]) as docker:
            docker.cli("pull", f"{proxy.host}/fleet/redirect:1")
        redirected = re.findall(rf'"GET /v2/fleet/redirect/blobs/{layer} [^"]*" 307 ', proxy.log())
        assert len(redirected) >= 3  # ours, skopeo's warm copy and docker's pull
    assert upstream_blob_gets(registry, layer) == 1


def test_s3_down_degrades_replicas_to_relaying_and_they_recover_when_it_returns(
    fleet: Fleet, registry: Registry, tmp_path: Path
) -> None:
    replica = fleet.replicas[0]
    fleet.faults.down = True
    push_random_image(registry, "fleet/down", [512])
    copy(replica, "fleet/down:1", tmp_path / "while-down")
    wait_until(  # the failed upload, or the probe every 5 s, notices
        lambda: "degraded" in requests.get(f"{replica.url}/readyz", timeout=10).text,
        timeout=30,
        what="/readyz to report the blob store degraded",
    )
    metrics = requests.get(f"{replica.url}/metrics", timeout=10).text
    assert "wave_proxy_blob_store_up 0.0" in metrics
    fleet.faults.down = False
    for each in fleet.replicas:
        wait_until(
            lambda each=each: "degraded" not in requests.get(f"{each.url}/readyz", timeout=10).text,
            timeout=30,
            what="every replica to notice S3 is back",
        )
    image = push_random_image(registry, "fleet/back", [512])
    copy(fleet.replicas[1], "fleet/back:1", tmp_path / "after")
    wait_until(lambda: set(blob_digests(image)) <= fleet.stored(), what="the new blobs in S3")


def test_a_replica_killed_mid_fill_leaves_the_fill_to_another(
    tmp_path: Path,
    registry: Registry,
    redis_server: Redis,  # noqa: F811
    s3: tuple,
) -> None:
    with started(Fleet(tmp_path, registry, redis_server, s3, [], direct=True)) as fleet:
        killed_mid_fill(fleet, registry, tmp_path)


def killed_mid_fill(fleet: Fleet, registry: Registry, tmp_path: Path) -> None:
    first, second, third = fleet.replicas
    image = push_random_image(registry, "fleet/killed", [24 << 10])
    layer = blob_digests(image)[1]
    requests.get(f"{first.url}/v2/fleet/killed/manifests/1", timeout=10).raise_for_status()
    stalled = requests.get(f"{first.url}/v2/fleet/killed/blobs/{layer}", stream=True, timeout=30)
    next(stalled.iter_content(1 << 16))  # the fill has begun; the client reads no further
    assert first.service is not None
    first.service.proc.kill()
    first.service.proc.wait()
    stalled.close()
    with ThreadPoolExecutor(2) as pool:
        pulls = [
            pool.submit(copy, r, "fleet/killed:1", tmp_path / f"pull-{i}")
            for i, r in enumerate((second, third))
        ]
        for done in pulls:
            done.result()
    wait_until(lambda: layer in fleet.stored(), what="the fill that took over to reach S3")
    key = f"fleet/blobs/sha256/{layer.split(':')[1]}"
    # Our own check of the bytes (moto labels a copied multipart object with its parts' CRC).
    client = fleet.s3.boto3_client(response_checksum_validation="when_required")
    body = client.get_object(Bucket=fleet.bucket, Key=key)["Body"].read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer
    assert upstream_blob_gets(registry, layer) <= 2  # the killed fill, and one that took over


def test_with_redis_down_served_images_pull_by_digest_and_new_tags_get_a_clear_503(
    tmp_path: Path, registry: Registry, s3: tuple
) -> None:
    (tmp_path / "redis").mkdir()
    with (
        redis_running(tmp_path / "redis") as redis,
        started(Fleet(tmp_path, registry, redis, s3, [])) as fleet,
    ):
        replica = fleet.replicas[0]
        push_random_image(registry, "fleet/redis", [512])
        copy(replica, "fleet/redis:1", tmp_path / "before")
        reference = f"docker://{replica.host}/fleet/redis:1"
        digest = json.loads(skopeo("inspect", "--tls-verify=false", reference))["Digest"]
        redis.service.stop()
        copy(replica, f"fleet/redis@{digest}", tmp_path / "by-digest")
        push_random_image(registry, "fleet/new", [16])
        answer = requests.get(f"{replica.url}/v2/fleet/new/manifests/1", timeout=30)
        assert answer.status_code == 503
        assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_blobs_cached_while_s3_was_down_are_redirected_to_once_it_returns(
    tmp_path: Path,
    registry: Registry,
    redis_server: Redis,  # noqa: F811
    s3: tuple,
) -> None:
    made = Fleet(tmp_path, registry, redis_server, s3, ["--blob-redirect"])
    replica = made.replicas[0]
    image = push_random_image(registry, "fleet/healed", [256])
    layer = blob_digests(image)[1]
    with proxy_running(replica.workdir, replica.args, env=replica.env) as proxy:
        made.faults.down = True
        wait_until(
            lambda: "degraded" in requests.get(f"{proxy.url}/readyz", timeout=10).text,
            timeout=30,
            what="the replica to notice S3 is down",
        )
        copy(proxy, "fleet/healed:1", tmp_path / "while-down")  # relayed, kept in the local cache
        made.faults.down = False
        wait_until(
            lambda: "degraded" not in requests.get(f"{proxy.url}/readyz", timeout=10).text,
            timeout=30,
            what="the replica to notice S3 is back",
        )
        url = f"{proxy.url}/v2/fleet/healed/blobs/{layer}"
        assert requests.get(url, allow_redirects=False, timeout=30).status_code == 307
    assert layer in made.stored()
    assert upstream_blob_gets(registry, layer) == 1
