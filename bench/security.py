"""The cost of security: manifest GETs by tag at c=32 (wrk) through a proxy with --htpasswd and
TLS, against the same proxy open and plain, and against distribution with htpasswd and TLS (the
same certificate), all in the same run. Clients send Basic credentials on every request
(containerd's hosts.toml header), the proxy's most expensive path after a token's first use.
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
from pathlib import Path

from bench.report import Comparison
from tests.support import need_binary
from tests.support.images import DOCKER_MANIFEST, Pusher, push_busybox
from tests.support.proxy import Proxy, upstream_args
from tests.support.registry import registry_running
from tests.support.tls import self_signed_cert

WRK_SECONDS = 10
USER, PASSWORD = "bench", "bench-pw"


def run(repeat: int) -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        workdir = Path(tmp)
        key, cert = self_signed_cert(workdir)
        with (
            registry_running(workdir / "open") as registry,
            registry_running(workdir / "htpasswd", "htpasswd", tls=(key, cert)) as guarded,
        ):
            image = push_busybox(Pusher(registry))
            pusher = Pusher(guarded)
            pusher.session.verify = str(cert)
            pusher.session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over `verify`
            push_busybox(pusher)
            users = workdir / "users"
            subprocess.run(["htpasswd", "-B", "-b", "-c", str(users), USER, PASSWORD], check=True)
            plain = Proxy(workdir / "plain", upstream_args({"docker.io": registry}))
            secure_args = [*upstream_args({"docker.io": registry}), "--htpasswd", str(users)]
            secure_args += ["--tls-cert", str(cert), "--tls-key", str(key)]
            secure = Proxy(workdir / "secure", secure_args)
            path = f"/v2/{image.repository}/manifests/{image.tag}"
            login = _basic(USER, PASSWORD)
            assert guarded.credentials is not None
            their_login = _basic(guarded.credentials.username, guarded.credentials.password)
            rates: dict[str, list[float]] = {"secure": [], "plain": [], "distribution": []}
            for proxy in (plain, secure):
                proxy.start()
            try:
                for _ in range(repeat):  # contenders take turns within each round
                    rates["secure"].append(_wrk(f"{secure.url}{path}", login))
                    rates["plain"].append(_wrk(f"{plain.url}{path}", None))
                    rates["distribution"].append(_wrk(f"{guarded.url}{path}", their_login))
            finally:
                for proxy in (plain, secure):
                    proxy.stop()
    median = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    return [
        Comparison(
            "manifest GET c=32, htpasswd+TLS vs open plain proxy",
            "req/s",
            median["secure"],
            median["plain"],
            "same proxy, open",
            "higher",
            1 / 1.3,
        ),
        Comparison(
            "manifest GET c=32, htpasswd+TLS vs distribution htpasswd",
            "req/s",
            median["secure"],
            median["distribution"],
            "distribution, htpasswd+TLS",
            "higher",
            2.0,
        ),
    ]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _wrk(url: str, authorization: str | None) -> float:
    headers = ["-H", f"Accept: {DOCKER_MANIFEST}"]
    if authorization:
        headers += ["-H", f"Authorization: {authorization}"]
    output = subprocess.run(
        [need_binary("wrk"), "-t2", "-c32", f"-d{WRK_SECONDS}s", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} error responses from {url}:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert found is not None, output
    return float(found.group(1))
