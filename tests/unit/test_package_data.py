"""`pip install .` ships every file the code reads at run time: each non-Python file under src/opsline is matched by a
package-data pattern in pyproject.toml (a template left out works in the editable checkout and breaks in production)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "opsline"


def test_every_data_file_is_declared_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["opsline"]
    declared = {p for pattern in patterns for p in PKG.glob(pattern) if p.is_file()}
    data = {p for p in PKG.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    missing = sorted(str(p.relative_to(PKG)) for p in data - declared)
    assert not missing, f"not shipped by pip install . (add to [tool.setuptools.package-data]): {missing}"
