"""WWW-Authenticate challenges and docker config.json credentials."""

from __future__ import annotations

import base64
import json

import pytest

from wave_proxy.upstream.auth import (
    Credentials,
    DockerConfigError,
    load_docker_config,
    parse_www_authenticate,
    preferred_challenge,
)


def test_bearer_challenge_with_commas_inside_quoted_scope():
    [challenge] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["scope"] == "repository:samalba/my-app:pull,push"


def test_several_challenges_prefer_bearer_over_basic():
    challenges = parse_www_authenticate('Basic realm="x", Bearer realm="https://t/token"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    chosen = preferred_challenge(challenges)
    assert chosen is not None and chosen.realm == "https://t/token"


def test_unquoted_and_escaped_parameter_values():
    [challenge] = parse_www_authenticate('bearer realm=https://t/token, service="a\\"b"')
    assert challenge.params == {"realm": "https://t/token", "service": 'a"b'}


def test_unsupported_schemes_yield_no_preferred_challenge():
    assert preferred_challenge(parse_www_authenticate("Negotiate abc")) is None
    assert preferred_challenge(parse_www_authenticate("")) is None


def test_docker_config_reads_auth_and_username_password_entries(tmp_path):
    path = tmp_path / "config.json"
    encoded = base64.b64encode(b"alice:se:cret").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": encoded},
                    "127.0.0.1:5000": {"username": "bob", "password": "pw"},
                    "ghcr.io": {},
                },
                "credsStore": "desktop",
                "credHelpers": {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"},
            }
        )
    )
    config = load_docker_config(path)
    assert config.auths == {
        "docker.io": Credentials("alice", "se:cret"),
        "127.0.0.1:5000": Credentials("bob", "pw"),
    }
    assert config.helpers == {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"}
    assert config.store == "desktop"


@pytest.mark.parametrize("content", ["{not json", '{"auths": {"x": {"auth": "!!"}}}'])
def test_broken_docker_config_is_reported(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(DockerConfigError):
        load_docker_config(path)


def test_credentials_never_show_the_password_in_repr():
    assert "hunter2" not in repr(Credentials("me", "hunter2"))
