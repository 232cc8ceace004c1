"""The house plan in `.importlinter` holds, and breaking it fails the lint.

`make lint` runs `lint-imports`; these tests run it too, on the real tree and on a copy of
it with one deliberate violation each, so a contract that cannot fail would show here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> tuple[int, str]:
    """Run lint-imports on the packages under `tree` with its `.importlinter`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [str(LINT_IMPORTS), str(tree / ".importlinter"), "--no-cache", "--no-logo"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def status_of(output: str, contract: str) -> str:
    """KEPT or BROKEN after the contract's name (lint-imports wraps long names at 80 columns)."""
    text = " ".join(output.split())
    start = text.index(contract + " ") + len(contract) + 1
    return text[start:].split(" ", 1)[0]


@pytest.fixture(scope="module")
def copy_of_the_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("bot", "handlers"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_the_house_plan_holds() -> None:
    code, output = lint_imports(ROOT)
    assert code == 0, output


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "bot/backup/catalog.py",
            "from bot.exceptions import model as _model",
            "Features know each other only through named ports",
        ),
        (
            "bot/status/service.py",
            "import kubernetes as _kubernetes",
            "Only bot.kube and the playground's installers talk to the kubernetes SDK",
        ),
        (
            "bot/store/database.py",
            "from bot.promotion import records as _records",
            "No import cycles between sibling packages or modules",
        ),
        (
            "bot/errors.py",
            "from bot.alerts import labels as _labels",
            "Layers: root -> handlers -> features -> ports, store and adapters -> base types",
        ),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(
    copy_of_the_tree: Path, module: str, line: str, contract: str
) -> None:
    code, output = lint_imports(copy_of_the_tree)
    assert code == 0 and status_of(output, contract) == "KEPT", output
    path = copy_of_the_tree / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # noqa\n")
        code, output = lint_imports(copy_of_the_tree)
    finally:
        path.write_text(original)
    assert code == 1, output
    assert status_of(output, contract) == "BROKEN", output
