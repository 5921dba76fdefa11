"""Packaging: the wheel holds only the `cadterm` namespace, and imports stay light."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Left out of the copy the wheel is built from: they are not sources, and a stale
# `build/lib` would otherwise put deleted modules back into the wheel.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache"
)


def _package_dirs() -> dict[str, str]:
    """pyproject's package-dir: import name (``cadterm.tui``) -> folder (``tui``)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-dir"]


def _expected_wheel_files() -> set[str]:
    """Every source file under each mapped folder, named as it must appear in the wheel."""
    expected = set()
    for package, folder in _package_dirs().items():
        prefix = package.replace(".", "/")
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if path.is_file() and "__pycache__" not in relative.parts:
                expected.add(f"{prefix}/{relative.as_posix()}")
    return expected


@pytest.mark.slow
def test_wheel_contains_only_the_cadterm_namespace(tmp_path: Path) -> None:
    if importlib.util.find_spec("build") is None:
        pytest.skip("the `build` package is not installed (pip install -e '.[test]')")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    out = tmp_path / "dist"
    # Isolated build: pip fetches setuptools and wheel into a throwaway environment, as
    # any user's `python -m build` would.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    wheels = list(out.glob("cadterm-*.whl"))
    assert len(wheels) == 1, wheels

    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        dist_info = {name.split("/", 1)[0] for name in names if ".dist-info/" in name}
        assert len(dist_info) == 1, dist_info
        (dist_info_dir,) = dist_info
        assert dist_info_dir.startswith("cadterm-")
        entry_points = wheel.read(f"{dist_info_dir}/entry_points.txt").decode()

    outside = [n for n in names if not n.startswith(("cadterm/", f"{dist_info_dir}/"))]
    assert outside == [], f"files outside cadterm/: {outside}"
    for required in (
        "cadterm/protocol/__init__.py",
        "cadterm/server/__init__.py",
        "cadterm/cli/main.py",
    ):
        assert required in names
    top_level = {name.split("/", 1)[0] for name in names}
    for stray in ("cli", "protocol", "domain", "server", "client", "tui", "tests", "bench"):
        assert stray not in top_level
    assert not any(name.startswith("cadterm/tests/") for name in names)
    # Subpackages (server/store/, ...) and data files must ship too, not only the
    # top-level packages named in pyproject.
    missing = sorted(_expected_wheel_files() - set(names))
    assert missing == [], f"source files missing from the wheel: {missing}"

    lines = [line.strip() for line in entry_points.splitlines()]
    assert "[console_scripts]" in lines
    assert "cadterm = cadterm.cli.main:main" in lines
