"""docs/architecture.md names every module of every package, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("cli", "protocol", "domain", "client", "server", "sim", "tui", "themes")


def modules_on_disk() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def modules_in_the_doc() -> set[str]:
    named: set[str] = set()
    folder = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"### `([a-z_/]+)/`", line):
            folder = heading.group(1)
        elif folder and (item := re.match(r"- `([a-z_]+\.py)`:", line)):
            named.add(f"{folder}/{item.group(1)}")
    return named


def test_every_module_is_listed_under_its_folder() -> None:
    on_disk, listed = modules_on_disk(), modules_in_the_doc()
    assert sorted(on_disk - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(listed - on_disk) == [], "docs/architecture.md lists modules that are gone"


def test_the_layer_table_names_every_package_folder() -> None:
    table = DOC.read_text(encoding="utf-8").split("## Layers", 1)[1].split("##", 1)[0]
    folders = set(re.findall(r"^\| `([a-z]+)/` \|", table, flags=re.MULTILINE))
    assert folders >= set(PACKAGES)
    assert {"tests", "bench", "docs"} <= folders
