"""`wavectl serve` reports bad settings in one line with a non-zero status, no traceback."""

from __future__ import annotations

import pytest

from wave_proxy.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nohost"], "invalid listen address"),
        (["--layer", "/nonexistent/layer.tar.gz"], "cannot read layer"),
        (["--registry", "docker.io=ftp://x"], "invalid URL"),
        (["--docker-config", "/nonexistent/config.json"], "cannot read docker config"),
        (["--config", "/nonexistent/proxy.toml"], "cannot read config file"),
    ],
)
def test_bad_settings_exit_2_with_one_line(capsys, tmp_path, args, message):
    status = main(["serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_layer_that_is_not_gzip_is_refused_at_start(capsys, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    status = main(["serve", "--data-dir", str(tmp_path / "d"), "--layer", str(junk)])
    assert status == 2
    assert "is not a .tar.gz" in capsys.readouterr().err


def test_a_corrupt_metadata_store_is_reported_not_a_traceback(capsys, tmp_path):
    (tmp_path / "metadata.sqlite3").write_text("not a database")
    status = main(["serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0"])
    err = capsys.readouterr().err
    assert status == 2
    assert "cannot open the metadata store" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "url", ["http://user:s3cret@127.0.0.1:5000", "https://s3cret@registry.test", "ftp://u:s3cret@x"]
)
def test_a_registry_url_with_credentials_is_refused_without_echoing_them(capsys, tmp_path, url):
    args = ["--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0"]
    status = main(["serve", *args, "--registry", f"docker.io={url}"])
    err = capsys.readouterr().err
    assert status == 2
    assert "--registry-auth" in err or "invalid URL" in err
    assert "s3cret" not in err
