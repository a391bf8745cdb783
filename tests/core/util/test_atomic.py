"""Every file ``deepmark`` writes is written atomically: a temporary file in the target's folder, flushed
and fsynced, renamed over the target; a write that fails half-way leaves the old file and no temporary.

Two checks: behaviour (real writers whose serialiser fails half-way), and an AST scan of every ``core``
module the command line reaches for file writes that bypass ``deepmark.core.util.atomic``."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

import deepmark.core
from deepmark.core.domain.structures import Detection, RawHeads
from deepmark.core.util import atomic

CORE = Path(deepmark.core.__file__).parent


class HalfWay(RuntimeError):
    pass


def _write_then_fail(*args, **kwargs):
    """A serialiser that writes some bytes into the handle it is given, then fails."""
    handle = next(a for a in (*args, *kwargs.values()) if hasattr(a, "write"))
    handle.write(b"partial" if "b" in handle.mode else "partial")
    raise HalfWay("serialiser failed half-way")


def _heads() -> RawHeads:
    rng = np.random.default_rng(0)
    return RawHeads(rng.random((13, 8, 8)), rng.random((2, 8, 8)), rng.random((2, 8, 8)), rng.random((124, 8, 8)),
                    rng.random((62, 8, 8)), rng.random((2, 8, 8)), image_size=(32, 32))


def _detection(taxonomy) -> Detection:
    category = taxonomy.category(1)
    landmarks = np.column_stack([np.linspace(2, 20, category.num_landmarks)] * 2 + [np.ones(category.num_landmarks)])
    return Detection(1, 0.9, 0.9, np.array([1.0, 1.0, 25.0, 25.0]), landmarks, np.zeros(category.num_landmarks, bool))


def _tune_table(path: Path) -> None:
    from deepmark.core.evaluation.tune import TuneResult

    TuneResult(("alpha",), (np.array([0.0, 1.0]),), np.array([0.1, 0.2]), np.array([0.3, 0.4]), "map_pt", None,
               None, 1).save(path)


def _checkpoint(path: Path) -> None:
    from deepmark.core.network.checkpoint import save_checkpoint

    save_checkpoint(path, {"version": 1, "weights": np.zeros(3)})


#: name → (file written, write(path, taxonomy), the serialiser it hands the temporary file: (module, attribute)).
WRITERS = {
    "results JSON": ("r.json", lambda p, t: _df2().write_results_json(p, {1: [_detection(t)]}), ("json", "dump")),
    "predictions JSON": ("p.json", lambda p, t: _df2().write_df2_predictions(p, [_detection(t)]), ("json", "dump")),
    "annotation JSON": ("a.json", lambda p, t: _df2().write_df2_annotation(p, []), ("json", "dump")),
    "raw heads": ("h.npz", lambda p, t: _heads_file().save_heads(p, _heads()), ("numpy", "savez_compressed")),
    "checkpoint": ("c.pt", lambda p, t: _checkpoint(p), ("torch", "save")),
    "tune table": ("t.csv", lambda p, t: _tune_table(p), None),
    "synthetic image": ("image/000001.jpg", lambda p, t: _synthetic().write_example(p.parent.parent, 1), None),
    "best parameters / metrics (CLI)": ("b.json", lambda p, t: atomic.write_text_atomically(p, "{}"), None),
    "exported image copy": ("i.jpg", lambda p, t: atomic.copy_atomically(__file__, p), None),
    "training log line": ("log.jsonl", lambda p, t: atomic.append_text_atomically(p, "{}\n"), None),
}


def _df2():
    from deepmark.core.formats import df2
    return df2


def _heads_file():
    from deepmark.core.formats import heads_file
    return heads_file


def _synthetic():
    from deepmark.core.synthetic import dataset
    return dataset


def _old_file(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    for folder in ("image", "annos"):
        (tmp_path / folder).mkdir()
    target = tmp_path / name
    target.write_bytes(b"the old contents")
    return target, sorted(p.name for p in target.parent.iterdir())


@pytest.mark.parametrize("name", [n for n, (_, _, serialiser) in WRITERS.items() if serialiser])
def test_a_serialiser_failing_half_way_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, taxonomy, name):
    file_name, write, (module, attribute) = WRITERS[name]
    target, before = _old_file(tmp_path, file_name)
    monkeypatch.setattr(f"{module}.{attribute}", _write_then_fail)
    with pytest.raises(HalfWay):
        write(target, taxonomy)
    assert target.read_bytes() == b"the old contents"
    assert sorted(p.name for p in target.parent.iterdir()) == before, "a temporary file was left behind"


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_write_failing_after_its_bytes_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, taxonomy, name):
    """Every writer: the bytes are written, then the flush to disk fails (a full disk, an I/O error)."""
    file_name, write, _ = WRITERS[name]
    target, before = _old_file(tmp_path, file_name)
    written = []

    def failing_fsync(fd):
        written.append(os.fstat(fd).st_size)
        raise OSError("I/O error at fsync")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="fsync"):
        write(target, taxonomy)
    assert written and written[0] > 0  # the failure came after real bytes
    assert target.read_bytes() == b"the old contents"
    assert sorted(p.name for p in target.parent.iterdir()) == before, "a temporary file was left behind"


@pytest.mark.parametrize("helper", ["write_atomically", "write_text_atomically", "append_text_atomically",
                                    "copy_atomically"])
def test_the_helpers_leave_the_old_file_when_the_write_fails(tmp_path, monkeypatch, helper):
    target, source = tmp_path / "out.bin", tmp_path / "source.bin"
    target.write_bytes(b"old")
    source.write_bytes(b"new bytes")

    def failing_replace(*args):
        raise OSError("disk full at the last step")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    call = {"write_atomically": lambda: atomic.write_atomically(target, lambda h: h.write(b"new"), binary=True),
            "write_text_atomically": lambda: atomic.write_text_atomically(target, "new"),
            "append_text_atomically": lambda: atomic.append_text_atomically(target, "new"),
            "copy_atomically": lambda: atomic.copy_atomically(source, target)}[helper]
    with pytest.raises(OSError, match="disk full"):
        call()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "source.bin"]


def test_the_helpers_write_whole_files(tmp_path):
    target = tmp_path / "log.jsonl"
    atomic.append_text_atomically(target, '{"epoch": 0}\n')
    atomic.append_text_atomically(target, '{"epoch": 1}\n')
    assert [json.loads(line)["epoch"] for line in target.read_text().splitlines()] == [0, 1]
    copy = atomic.copy_atomically(target, tmp_path / "copy.jsonl")
    assert copy.read_bytes() == target.read_bytes() and oct(copy.stat().st_mode & 0o777) == "0o644"


# ---------------------------------------------------------------------------------------------
# The scan

#: Library functions that write a file (by dotted name) and methods that do (by name, on any object).
FILE_WRITERS = {"np.save", "np.savez", "np.savez_compressed", "np.savetxt", "cv2.imwrite", "json.dump", "pickle.dump",
                "torch.save", "onnx.save", "onnx.save_model", "shutil.copy", "shutil.copy2", "shutil.copyfile",
                "shutil.copyfileobj", "shutil.copytree", "torch.onnx.export", "quantize_static", "quant_pre_process"}
METHOD_WRITERS = {"write_text", "write_bytes", "tofile"}
WRITE_MODES = set("wax+")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return "?"


def _opens_for_writing(call: ast.Call) -> bool:
    """``open(p, "w")`` / ``path.open("a")`` / ``os.fdopen(fd, "wb")`` with a literal write mode."""
    dotted = _dotted(call.func)
    if dotted not in ("open", "os.fdopen") and not (dotted.endswith(".open") and dotted != "os.open"):
        return False
    position = 1 if dotted in ("open", "os.fdopen") else 0  # a method's mode comes first
    modes = [k.value for k in call.keywords if k.arg == "mode"] + call.args[position : position + 1]
    return any(isinstance(m, ast.Constant) and isinstance(m.value, str) and WRITE_MODES & set(m.value) for m in modes)


def bare_writes(source: str) -> list[tuple[int, str, str]]:
    """(line, call, enclosing function) of each file write in ``source`` not made through
    ``write_atomically`` (a call inside an argument of a ``write_atomically`` call writes its temporary)."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def context(node: ast.AST) -> tuple[bool, str]:
        atomic_arg, function = False, "<module>"
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.Call) and _dotted(node.func).rsplit(".", 1)[-1] == "write_atomically":
                atomic_arg = True
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and function == "<module>":
                function = node.name
        return atomic_arg, function

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func)
        if not (_opens_for_writing(node) or dotted in FILE_WRITERS
                or (isinstance(node.func, ast.Attribute) and node.func.attr in METHOD_WRITERS)):
            continue
        atomic_arg, function = context(node)
        if not atomic_arg:
            found.append((node.lineno, dotted, function))
    return found


def _reached_from_the_cli() -> dict[str, Path]:
    """``core`` modules the ``deepmark`` command imports, directly or through others, lazily or not."""
    todo, seen = ["deepmark.core.cli.main"], {}
    while todo:
        name = todo.pop()
        relative = name.removeprefix("deepmark.core").lstrip(".").replace(".", "/")
        path = CORE / relative / "__init__.py" if (CORE / relative).is_dir() else CORE / f"{relative}.py"
        if name in seen or not path.is_file():
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepmark.core"):
                todo.append(node.module)
                todo += [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("deepmark.core")]
    return seen


def test_the_scan_reaches_the_modules_that_write():
    reached = {str(p.relative_to(CORE)) for p in _reached_from_the_cli().values()}
    assert {"formats/df2.py", "formats/heads_file.py", "evaluation/tune.py", "store/exporting.py",
            "synthetic/dataset.py", "training/train.py", "training/export.py", "network/checkpoint.py",
            "cli/main.py", "cli/store.py", "util/atomic.py"} <= reached


@pytest.mark.parametrize(("snippet", "bare"), [
    ('Path(out).write_text(json.dumps(x))', True),
    ('open(path, "w").write(text)', True),
    ('with path.open("a", encoding="utf-8") as f:\n    f.write(x)', True),
    ('cv2.imwrite(str(path), image)', True),
    ('np.savez_compressed(path, **arrays)', True),
    ('json.dump(doc, handle)', True),
    ('shutil.copyfile(a, b)', True),
    ('torch.save(payload, path)', True),
    ('sys.stdout = open(os.devnull, "w")', True),
    ('write_atomically(path, lambda handle: json.dump(doc, handle))', False),
    ('write_atomically(path, lambda h: np.savez_compressed(h, a=a), binary=True)', False),
    ('text = json.dumps(doc)\nwrite_text_atomically(path, text)', False),
    ('data = open(path, "rb").read()', False),
    ('text = path.read_text()\nrows = table.copy()', False),
])
def test_the_scan_tells_bare_writes_from_atomic_ones(snippet, bare):
    assert bool(bare_writes(snippet)) is bare


#: Bare writes that stay, each with its reason: (module, enclosing function, call) → why.
KNOWN = {
    ("cli/main.py", "main", "open"): "stdout of `deepmark ... | head` replaced by /dev/null, no file written",
    ("training/export.py", "export_onnx", "torch.onnx.export"): "into a TemporaryDirectory, then write_atomically",
    ("training/export.py", "quantize_static_qdq", "quant_pre_process"): "into a TemporaryDirectory, then the callers "
                                                                          "write_atomically",
    ("training/export.py", "quantize_static_qdq", "quantize_static"): "into a TemporaryDirectory, then the callers "
                                                                        "write_atomically",
    ("refinement/export.py", "export_refiner", "torch.onnx.export"): "into a TemporaryDirectory, then write_atomically",
}


def test_no_module_reached_from_the_cli_writes_a_file_non_atomically():
    found, known = [], set()
    for path in _reached_from_the_cli().values():
        module = str(path.relative_to(CORE))
        for line, call, function in bare_writes(path.read_text(encoding="utf-8")):
            if (module, function, call) in KNOWN:
                known.add((module, function, call))
            else:
                found.append(f"{module}:{line} {call}(...) in {function}")
    assert not found, "write these through deepmark.core.util.atomic:\n" + "\n".join(found)
    assert known == set(KNOWN), f"KNOWN lists writes that are gone: {set(KNOWN) - known}"
