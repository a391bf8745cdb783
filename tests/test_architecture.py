"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and they catch a violation.

import-linter reads a copy of the packages laid out as they install (``deepmark/core``, ``deepmark/app``),
so the check does not depend on how the checkout is installed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> Path:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed (pip install -e '.[test]' installs import-linter)")
    return Path(found)


@pytest.fixture
def packages(tmp_path) -> Path:
    """``tmp_path/src/deepmark/{core,app}``: the packages as installed, with the project's contracts."""
    src = tmp_path / "src" / "deepmark"
    src.mkdir(parents=True)  # no __init__.py: deepmark is a namespace, as installed
    for name in ("core", "app"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _run(where: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(where / "src"), "PATH": str(Path(sys.executable).parent), "NO_COLOR": "1"}
    return subprocess.run([str(_lint_imports()), "--no-cache", "pyproject.toml"], cwd=where, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layer_contracts_hold(packages):
    done = _run(packages)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/store/bulk.py", "from deepmark.core.evaluation import evaluate", "store imports no inference"),
    ("core/domain/taxonomy.py", "import PySide6", "Qt only in the app"),
    ("core/centernet/decode.py", "from deepmark.core.store import project", "core is layered by concern"),
    ("core/inference/predict.py", "import torch", "torch only in training"),
    ("core/formats/df2.py", "from deepmark.app import window", "built on the library"),
])
def test_a_violation_breaks_its_contract(packages, module, line, contract):
    path = packages / "src" / "deepmark" / module
    path.write_text(path.read_text() + f"\n\ndef _violation():\n    {line}\n")
    done = _run(packages)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
