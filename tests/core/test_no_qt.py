"""``core`` is a Qt-free library: no module under core/ may import Qt (the app must own all of it)."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
QT_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "qtpy")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_no_qt():
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 5
    offenders = {str(p.relative_to(CORE)): sorted(_imports(p) & set(QT_MODULES)) for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}
