"""A real upstream: Debian's `docker-registry` (distribution 2.8) on loopback, in three auth modes.

- "open": anyone may pull and push.
- "htpasswd": HTTP Basic with a bcrypt htpasswd file (made by `htpasswd -Bbn`).
- "token": the registry's `auth.token` mode; a small in-process `TokenIssuer` checks Basic
  credentials and signs ES256 JWTs whose `x5c` header carries a self-signed certificate that the
  registry trusts through `rootcertbundle`, as distribution 2.8 requires.

`registry_running(workdir, mode)` starts one and stops it when the block ends (the registry's
process group gets SIGTERM, SIGKILL after 15 s; the token issuer's thread is shut down);
`Registry.auth_headers(repo)` gives the headers a test (or the image seeder) needs to talk to it
directly, whatever the mode.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support import Service, free_port, need_binary, wait_until

Mode = Literal["open", "htpasswd", "token"]

TOKEN_SERVICE = "wave-proxy-test-registry"
TOKEN_ISSUER = "wave-proxy-test-issuer"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A Docker token server (distribution `token.md`) for one user, in a background thread.

    GET /token?service=..&scope=.. with Basic credentials grants every requested action; without
    credentials it grants nothing (an anonymous token), wrong credentials get 401. POST /token
    (the OAuth2 password grant containerd tries first) is accepted too. `requests_seen` records
    (method, scopes, username) so tests can assert how often and for what a client asked.
    """

    def __init__(self, workdir: Path, credentials: Credentials, ttl: int = 300) -> None:
        self.credentials = credentials
        self.ttl = ttl
        self.requests_seen: list[tuple[str, list[str], str | None]] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.cert_path = workdir / "token-issuer.pem"
        self._cert_der = self._self_signed_cert()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _self_signed_cert(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert.public_bytes(serialization.Encoding.DER)

    def sign(self, subject: str, scopes: list[str]) -> str:
        """A JWT granting `scopes` ("repository:<name>:<actions>") to `subject`."""
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + self.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [_access_entry(scope) for scope in scopes],
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _grant(
        self, method: str, scopes: list[str], user: str | None, password: str | None
    ) -> tuple[int, dict]:
        """(status, body) for a token request; None user means anonymous."""
        self.requests_seen.append((method, scopes, user))
        if user is None:
            token = self.sign("", [])
        elif (user, password) == (self.credentials.username, self.credentials.password):
            token = self.sign(user, scopes)
        else:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        issued = dt.datetime.now(dt.UTC).isoformat()
        return 200, {
            "token": token,
            "access_token": token,
            "expires_in": self.ttl,
            "issued_at": issued,
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _basic(self) -> tuple[str | None, str | None]:
                header = self.headers.get("Authorization", "")
                if not header.lower().startswith("basic "):
                    return None, None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user, password

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                query = urllib.parse.parse_qs(url.query)
                self._reply(*issuer._grant("GET", query.get("scope", []), *self._basic()))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") != ["password"]:
                    return self._reply(400, {"error": "unsupported_grant_type"})
                scopes = " ".join(form.get("scope", [])).split()
                user = form.get("username", [None])[0]
                password = form.get("password", [None])[0]
                self._reply(*issuer._grant("POST", scopes, user, password))

        return Handler


def _access_entry(scope: str) -> dict:
    """`repository:host:5000/name:pull,push` -> access claim (the name may contain ':')."""
    kind, rest = scope.split(":", 1)
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": actions.split(",")}


@dataclass
class Registry:
    """A running docker-registry; `url` is what a client or the proxy's --registry points at."""

    mode: Mode
    port: int
    root: Path
    service: Service
    credentials: Credentials | None = None
    issuer: TokenIssuer | None = None
    tls: bool = False  # HTTPS (http.tls in its config)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def auth_headers(self, repository: str, actions: str = "pull,push") -> dict[str, str]:
        """Headers authorising `actions` on `repository` when talking to this registry directly."""
        if self.mode == "htpasswd":
            assert self.credentials
            return {"Authorization": self.credentials.basic()}
        if self.mode == "token":
            assert self.credentials and self.issuer
            scope = f"repository:{repository}:{actions}"
            if scope not in self._tokens:
                self._tokens[scope] = self.issuer.sign(self.credentials.username, [scope])
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        return {}

    def stop(self) -> None:
        self.service.stop()
        if self.issuer:
            self.issuer.stop()


DEFAULT_CREDENTIALS = Credentials("wave", "s3cret-pass")


def start_registry(
    workdir: Path,
    mode: Mode = "open",
    credentials: Credentials = DEFAULT_CREDENTIALS,
    tls: tuple[Path, Path] | None = None,
) -> Registry:
    """Start docker-registry with filesystem storage under `workdir` and wait until it answers;
    `tls`: (key, certificate) to serve HTTPS with."""
    binary = need_binary("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "wave-proxy-tests"},
    }
    if tls:
        config["http"]["tls"] = {"certificate": str(tls[1]), "key": str(tls[0])}
    issuer = None
    if mode == "htpasswd":
        entry = subprocess.run(
            [need_binary("htpasswd"), "-Bbn", credentials.username, credentials.password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (workdir / "htpasswd").write_text(entry + "\n")
        config["auth"] = {"htpasswd": {"realm": "wave-test", "path": str(workdir / "htpasswd")}}
    elif mode == "token":
        issuer = TokenIssuer(workdir, credentials)
        config["auth"] = {
            "token": {
                "realm": issuer.realm,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(issuer.cert_path),
            }
        }
    # JSON is YAML, so no YAML writer is needed.
    (workdir / "config.yml").write_text(json.dumps(config, indent=2))
    service = Service(
        f"registry-{mode}-{port}", [binary, "serve", str(workdir / "config.yml")], workdir
    )
    registry = Registry(
        mode=mode,
        port=port,
        root=workdir,
        service=service,
        credentials=None if mode == "open" else credentials,
        issuer=issuer,
        tls=tls is not None,
    )
    try:
        service.wait_port(port)
        wait_until(
            lambda: (
                requests.get(f"{registry.url}/v2/", timeout=2, verify=False).status_code
                in (200, 401)
            ),
            what=f"docker-registry ({mode}) to answer /v2/",
        )
    except BaseException:
        registry.stop()
        raise
    return registry


@contextlib.contextmanager
def registry_running(
    workdir: Path,
    mode: Mode = "open",
    credentials: Credentials = DEFAULT_CREDENTIALS,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[Registry]:
    registry = start_registry(workdir, mode, credentials, tls)
    try:
        yield registry
    finally:
        registry.stop()
