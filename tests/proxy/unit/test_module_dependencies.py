"""Dependencies point one way: the registry API and the Wave API are siblings under the app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "wave_proxy"


def _imports(package: str) -> set[str]:
    found = set()
    for path in (PACKAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("server", "api"), ("api", "server"), ("server", "app"), ("api", "app"), ("store", "app")],
)
def test_a_package_does_not_import_its_sibling_or_the_app(package: str, forbidden: str):
    prefix = f"wave_proxy.{forbidden}"
    assert not {m for m in _imports(package) if m == prefix or m.startswith(prefix + ".")}


def test_a_proxy_on_sqlite_never_imports_redis(tmp_path: Path):
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import wave_proxy.cli.serve\n"
        "from wave_proxy.app.factory import open_metadata_store\n"
        "from wave_proxy.config import Settings\n"
        f"store = asyncio.run(open_metadata_store(Settings(data_dir=Path({str(tmp_path)!r}))))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
