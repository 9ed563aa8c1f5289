"""`wavectl serve` appends the Fusion layer unless told not to; an explicit --layer replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wave_proxy.cli import main
from wave_proxy.config import LayerSpec, Settings, load_settings
from wave_proxy.fusion_default import fusion_layer_specs
from wave_proxy.image.layer import Platform
from wave_proxy.layerbuild import LayerBuildError, LayerInputs


def test_fusion_is_on_by_default_with_layers_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert settings.fusion is True
    assert settings.fusion_layers == tmp_path / "fusion-layers"


def test_an_explicit_layer_replaces_the_default(tmp_path: Path) -> None:
    settings = load_settings({"layer": [str(tmp_path / "mine.tar.gz")]}, environ={})
    assert settings.fusion is False
    assert settings.fusion_layers is None


def test_no_fusion_in_the_environment_turns_it_off() -> None:
    assert load_settings({}, environ={"WAVE_PROXY_FUSION": "false"}).fusion is False


def test_fusion_asked_for_together_with_a_layer_keeps_both(tmp_path: Path) -> None:
    settings = load_settings({"layer": ["extra.tar.gz"], "fusion": True}, environ={})
    assert settings.fusion is True
    assert [spec.path.name for spec in settings.layers] == ["extra.tar.gz"]


def test_a_given_fusion_layers_directory_is_where_the_layers_go(tmp_path: Path) -> None:
    settings = load_settings({"fusion_layers": str(tmp_path / "fl")}, environ={})
    assert settings.fusion_layers == tmp_path / "fl"


def test_prebuilt_layers_of_an_installation_without_sources_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_layer_sources(tmp_path, monkeypatch)
    for arch in ("amd64", "arm64"):
        (tmp_path / f"fusion-0.1.0-{arch}.tar.gz").write_bytes(b"prebuilt")
    specs = fusion_layer_specs(Settings(fusion=True, fusion_layers=tmp_path))
    assert specs == [
        LayerSpec(tmp_path / "fusion-0.1.0-amd64.tar.gz", Platform.of("linux", "amd64")),
        LayerSpec(tmp_path / "fusion-0.1.0-arm64.tar.gz", Platform.of("linux", "arm64")),
    ]


def test_missing_layers_without_sources_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_layer_sources(tmp_path, monkeypatch)
    with pytest.raises(LayerBuildError, match="wavectl layer build --out DIR"):
        fusion_layer_specs(Settings(fusion=True, fusion_layers=tmp_path / "none"))


def test_serve_reports_an_unobtainable_fusion_layer_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_layer_sources(tmp_path, monkeypatch)
    status = main(["serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0"])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert "cannot provide the Fusion layer: no Fusion layer" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def _without_layer_sources(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As installed from a wheel: no layers/debian.lock.json or layers/shim.c to build from."""
    inputs = LayerInputs.from_repo(root)
    monkeypatch.setattr(LayerInputs, "from_repo", lambda: inputs)
