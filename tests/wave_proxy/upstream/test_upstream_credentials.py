"""Docker credential helpers (`docker-credential-<name> get`) as a source of upstream
credentials, run as real executables on PATH."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wave_proxy.upstream.auth import Credentials, DockerConfig
from wave_proxy.upstream.credentials import (
    CredentialError,
    CredentialHelper,
    StaticCredentials,
    docker_config_source,
)

HELPER = """#!/bin/sh
read server
echo "$server" >> "{log}"
case "$server" in
  *missing*) echo "credentials not found in native keychain"; exit 1 ;;
  *broken*) echo "helper exploded" >&2; exit 3 ;;
esac
printf '{{"ServerURL":"%s","Username":"user-for-%s","Secret":"s3cret"}}' "$server" "$server"
"""


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install docker-credential-fake on PATH; returns the log of servers it was asked for."""
    log = tmp_path / "asked.log"
    program = tmp_path / "bin" / "docker-credential-fake"
    program.parent.mkdir()
    program.write_text(HELPER.format(log=log))
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.environ['PATH']}")
    return log


async def test_a_helper_answers_username_and_secret_for_the_server(helper: Path):
    creds = await CredentialHelper("fake", "registry.example.com").get()
    assert creds == Credentials("user-for-registry.example.com", "s3cret")


async def test_helper_answers_are_cached_for_a_while(helper: Path):
    now = [0.0]
    source = CredentialHelper("fake", "r.example.com", ttl=60, clock=lambda: now[0])
    await source.get()
    await source.get()
    assert helper.read_text().splitlines() == ["r.example.com"]
    now[0] = 61
    await source.get()
    assert len(helper.read_text().splitlines()) == 2


async def test_credentials_not_found_means_anonymous(helper: Path):
    assert await CredentialHelper("fake", "missing.example.com").get() is None


@pytest.mark.parametrize(
    ("helper_name", "server", "message"),
    [("fake", "broken.example.com", "helper exploded"), ("absent", "x.io", "not installed")],
)
async def test_failing_or_missing_helpers_say_why(helper: Path, helper_name, server, message):
    with pytest.raises(CredentialError, match=message):
        await CredentialHelper(helper_name, server).get()


def test_docker_order_is_cred_helper_then_auths_then_store():
    config = DockerConfig(
        auths={"a.io": Credentials("u", "p"), "b.io": Credentials("v", "q")},
        helpers={"a.io": "ecr-login"},
        store="desktop",
    )
    by_helper = docker_config_source(config, ["a.io"])
    assert isinstance(by_helper, CredentialHelper) and by_helper.program.endswith("ecr-login")
    assert docker_config_source(config, ["b.io"]) == StaticCredentials(Credentials("v", "q"))
    by_store = docker_config_source(config, ["c.io"])
    assert isinstance(by_store, CredentialHelper) and by_store.program.endswith("desktop")
    assert docker_config_source(DockerConfig(), ["c.io"]) is None


def test_docker_hub_helpers_are_asked_for_hubs_server_address():
    source = docker_config_source(DockerConfig(store="fake"), ["docker.io", "registry-1.docker.io"])
    assert isinstance(source, CredentialHelper)
    assert source.server == "https://index.docker.io/v1/"
