"""FUSION_* settings: sizes as Nextflow writes them, strict errors naming the variable."""

from __future__ import annotations

import pytest

from fusion_client.launcher import child_environment
from fusion_client.settings import Settings, SettingsError, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20000M", 20000 * 2**20),
        ("20G", 20 * 2**30),
        ("512MiB", 512 * 2**20),
        ("10Gi", 10 * 2**30),
        ("2GB", 2 * 2**30),
        ("1.5g", 3 * 2**29),
        ("4096", 4096),
        ("64k", 65536),
    ],
)
def test_sizes_parse_in_binary_units(text, size):
    assert parse_size(text) == size


def test_defaults_apply_without_variables():
    settings = Settings.from_env({})
    assert settings.mount == "/fusion"
    assert settings.cache_location == "/tmp"
    assert settings.cache_size is None


def test_the_cache_falls_back_to_the_azure_batch_task_directory():
    assert Settings.from_env({"AZ_BATCH_TASK_WORKING_DIR": "/mnt/task"}).cache_location == (
        "/mnt/task"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FUSION_CACHE_SIZE", "lots"),
        ("FUSION_CHUNK_SIZE", "1000"),
        ("FUSION_FETCH_THREADS", "0"),
        ("FUSION_METADATA_TTL", "soon"),
        ("FUSION_LOG_LEVEL", "chatty"),
        ("FUSION_MOUNT", "rel"),
        ("FUSION_UPLOAD_PART_SIZE", "1M"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_saved_loader_variables_are_restored_and_the_saved_names_removed():
    env = child_environment({"PATH": "/bin", "FUSION_SAVED_LD_PRELOAD": "/lib/x.so"})
    assert env == {"PATH": "/bin", "LD_PRELOAD": "/lib/x.so"}


def test_an_image_variable_that_merely_looks_saved_is_handed_on():
    env = child_environment({"FUSION_SAVED_OTHER": "y"})
    assert env == {"FUSION_SAVED_OTHER": "y"}
