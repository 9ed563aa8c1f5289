"""The Fusion launcher wraps an image's command rather than replacing it (pure config logic)."""

from __future__ import annotations

import json

import pytest

from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import sha256_digest
from wave_proxy.image.layer import LayerDescriptor, Platform
from wave_proxy.image.mutate import ConfigChanges, augment_config, augment_image

WRAP = ConfigChanges(entrypoint_prefix=("/usr/bin/fusion", "--"))
AMD64_LAYER = LayerDescriptor(
    "sha256:" + "1" * 64, 123, "sha256:" + "2" * 64, Platform.parse("linux/amd64")
)


def image_config(runtime: dict, architecture: str = "amd64") -> dict:
    return {
        "architecture": architecture,
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "5" * 64]},
        "history": [{"created_by": "base"}],
    }


def wrapped(runtime: dict) -> dict:
    return augment_config(image_config(runtime), [AMD64_LAYER], WRAP)["config"]


def test_an_image_entrypoint_runs_through_the_launcher_and_cmd_stays():
    result = wrapped({"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "x"]})
    assert result["Entrypoint"] == ["/usr/bin/fusion", "--", "/docker-entrypoint.sh"]
    assert result["Cmd"] == ["nginx", "-g", "x"]


def test_an_image_without_entrypoint_runs_its_cmd_after_the_separator():
    result = wrapped({"Cmd": ["sh"]})
    assert result["Entrypoint"] == ["/usr/bin/fusion", "--"]
    assert result["Cmd"] == ["sh"]


def test_a_cmd_that_starts_with_a_dash_is_still_the_command_after_the_separator():
    result = wrapped({"Cmd": ["--version"]})
    assert result["Entrypoint"] + result["Cmd"] == ["/usr/bin/fusion", "--", "--version"]


def test_an_image_with_neither_entrypoint_nor_cmd_needs_a_command_as_before():
    """`docker run IMAGE` has nothing to run either way; `docker run IMAGE CMD` runs CMD."""
    result = wrapped({"Env": ["PATH=/bin"]})
    assert result["Entrypoint"] == ["/usr/bin/fusion", "--"]
    assert "Cmd" not in result


def test_an_image_already_started_by_the_launcher_is_not_wrapped_twice():
    """E.g. an image the incumbent Wave made, whose Entrypoint is ["/usr/bin/fusion"]."""
    result = wrapped({"Entrypoint": ["/usr/bin/fusion"], "Cmd": ["bash"]})
    assert result["Entrypoint"] == ["/usr/bin/fusion"]


def test_history_records_the_new_entrypoint_as_an_empty_layer_entry():
    config = augment_config(image_config({"Entrypoint": ["/init"]}), [AMD64_LAYER], WRAP)
    last = config["history"][-1]
    assert last["empty_layer"] is True
    assert last["created_by"] == (
        'wave-proxy: changed config: ENTRYPOINT ["/usr/bin/fusion", "--", "/init"]'
    )
    layer_entries = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(layer_entries) == len(config["rootfs"]["diff_ids"])


def test_history_names_every_changed_setting():
    changes = ConfigChanges(cmd=("run",), working_dir="/w", env=("A=1",))
    config = augment_config(image_config({"Cmd": ["sh"]}), [], changes)
    assert config["history"][-1]["created_by"] == (
        'wave-proxy: changed config: CMD ["run"]; WORKDIR "/w"; ENV A=1'
    )


@pytest.mark.parametrize("architecture", ["s390x", "ppc64le"])
def test_an_image_of_a_platform_without_layer_is_served_unchanged(architecture):
    config = json.dumps(image_config({"Cmd": ["sh"]}, architecture)).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "size": len(config),
                "digest": sha256_digest(config),
            },
            "layers": [],
        }
    ).encode()
    assert augment_image(manifest, mt.OCI_MANIFEST, config, [AMD64_LAYER], "x/y", WRAP) is None
