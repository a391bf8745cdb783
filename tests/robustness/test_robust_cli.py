"""The command line's exit-status convention (0 done, 1 some inputs skipped or nothing matched, 2 nothing
done) and its faults: output folders that cannot be written, a disk that fills up during an export, an
unexpected exception, ``predict`` inputs whose names collide, and an export whose status filter matches
nothing. Each case checks the message, the exit status and that nothing was changed or left behind."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmark.core.cli import main as cli
from deepmark.core.store import Project
from deepmark.core.studio.display import demo_folder

UNWRITABLE = [Path("/proc/deepmark-x"), Path("/sys/deepmark-x")]  # a pseudo and a read-only file system


def deepmark(*args: str, cwd: Path | None = None, file_size_limit: int | None = None,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """``deepmark ARGS`` in a child process (``file_size_limit``: bytes any one written file may reach, the
    way a full disk refuses the next write)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit if file_size_limit else None)


def one_error_line(done: subprocess.CompletedProcess, *names: str) -> str:
    """The only ``error:`` line of stderr, which names each of ``names``; no traceback anywhere."""
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def df2_folder(tmp_path_factory) -> Path:
    """The demo's DeepFashion2 folder (image/ + annos/), copied."""
    return Path(shutil.copytree(demo_folder(), tmp_path_factory.mktemp("df2") / "demo"))


@pytest.fixture(scope="module")
def heads_folder(tmp_path_factory, df2_folder) -> Path:
    out = tmp_path_factory.mktemp("sim") / "sim"
    assert cli.main(["simulate", "--n", "4", "--out", str(out)]) == 0
    return out


# -- exit status 2: nothing done -------------------------------------------------------------------------

@pytest.mark.parametrize("folder", UNWRITABLE, ids=["proc", "sys"])
def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(folder, heads_folder, df2_folder,
                                                                         tiny_onnx, tmp_path):
    """Every command that writes names the folder and the reason, exit 2, before reading its inputs."""
    commands = [
        ["decode", str(heads_folder / "heads"), "--out", str(folder / "r.json")],
        ["eval", str(heads_folder / "annos"), str(heads_folder / "annos"), "--json", str(folder / "m.json")],
        ["tune", str(heads_folder / "annos"), str(heads_folder / "heads"), "--param", "alpha", "--values", "0,1",
         "--out", str(folder / "t.csv")],
        ["simulate", "--n", "2", "--out", str(folder / "sim")],
        ["synth", "--n", "2", "--out", str(folder / "synth"), "--quiet"],
        ["predict", str(df2_folder / "image"), "--model", str(tiny_onnx), "--out", str(folder / "pred"), "--quiet"],
    ]
    for command in commands:
        done = deepmark(*command)
        assert done.returncode == 2, (command, done.stderr)
        line = one_error_line(done, str(folder), "cannot write here")
        assert "(" in line  # the reason, from the system
        assert not done.stdout.strip(), command


def test_an_unexpected_exception_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, heads_folder):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_decode", broken)
    arguments = ["decode", str(heads_folder / "heads"), "--out", "/tmp/never.json"]
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", *arguments])


def test_bad_arguments_and_missing_inputs_exit_2(tmp_path):
    assert deepmark("predict").returncode == 2  # argparse: a required argument is missing
    done = deepmark("eval", str(tmp_path / "absent"), str(tmp_path / "absent.json"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# -- a disk that fills up ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def noisy_df2_folder(tmp_path_factory, df2_folder) -> Path:
    """The demo's annotations over images of noise of the same sizes (each well over 100 kB as JPEG)."""
    folder = Path(shutil.copytree(df2_folder, tmp_path_factory.mktemp("noisy") / "demo"))
    rng = np.random.default_rng(5)
    for path in (folder / "image").glob("*.jpg"):
        width, height = Image.open(path).size
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, quality=95)
        assert path.stat().st_size > 100_000
    return folder


@pytest.fixture
def accepted_project(tmp_path, noisy_df2_folder) -> Path:
    path = tmp_path / "p.deepmark"
    assert cli.main(["project", "init", str(path)]) == 0
    assert cli.main(["import", str(noisy_df2_folder), "--project", str(path), "--status", "accepted", "--quiet"]) == 0
    return path


def test_a_full_disk_during_an_export_keeps_the_old_export_and_leaves_nothing(accepted_project, tmp_path):
    out = tmp_path / "export"
    assert deepmark("export", str(out), "--project", str(accepted_project), "--quiet").returncode == 0
    before = tree(out)
    leftovers_before = sorted(name for name in os.listdir(tmp_path) if not name.startswith("p.deepmark"))
    # every image copy is larger than 64 kB: its write fails as on a full disk (the project, opened to read,
    # writes nothing that large)
    done = deepmark("export", str(out), "--project", str(accepted_project), "--overwrite", "--quiet",
                    file_size_limit=64_000)
    assert done.returncode == 2
    one_error_line(done, str(out))
    assert tree(out) == before  # the previous export, untouched
    leftovers = sorted(name for name in os.listdir(tmp_path) if not name.startswith("p.deepmark"))
    assert leftovers == leftovers_before  # no staging folder, no temporary file


def test_a_full_disk_during_predict_names_the_file_and_leaves_no_temporary_file(df2_folder, tiny_onnx, tmp_path):
    out = tmp_path / "pred"
    done = deepmark("predict", str(df2_folder / "image"), "--model", str(tiny_onnx), "--out", str(out),
                    "--heads", "--quiet", file_size_limit=30_000)  # JSON fits, raw heads do not
    assert done.returncode == 2
    one_error_line(done, str(out))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no half-written temporary file


# -- exit status 1: nothing matched ------------------------------------------------------------------------

def test_a_plain_import_then_export_says_nothing_matched_and_names_the_option(df2_folder, tmp_path):
    project = tmp_path / "p.deepmark"
    assert cli.main(["project", "init", str(project)]) == 0
    assert deepmark("import", str(df2_folder), "--project", str(project), "--quiet").returncode == 0
    out = tmp_path / "export"
    done = deepmark("export", str(out), "--project", str(project), "--quiet")
    assert done.returncode == 1
    line = one_error_line(done, "nothing to export", "accepted", "--status", "8 new")
    assert "Nothing was written" in line
    assert not out.exists()
    # with the option it names, the same project exports
    assert deepmark("export", str(out), "--project", str(project), "--status", "new", "--quiet").returncode == 0
    assert len(list((out / "train" / "annos").glob("*.json"))) + len(
        list((out / "validation" / "annos").glob("*.json"))) == 8


# -- predict: names that collide ---------------------------------------------------------------------------

def test_predict_never_overwrites_its_own_output_when_stems_collide(tiny_onnx, tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "in"
    inputs = [root / "a" / "x.jpg", root / "a" / "x.png", root / "b" / "x.jpg", root / "b" / "y.jpg"]
    for k, path in enumerate(inputs):
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (64 + 8 * k, 96, 3), dtype=np.uint8)  # sizes tell the images apart
        Image.fromarray(pixels).save(path)
    out = tmp_path / "pred"
    done = deepmark("predict", str(root / "a"), str(root / "b"), str(inputs[0]), "--model", str(tiny_onnx),
                    "--out", str(out), "--quiet", "--heads")
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == ["a/x.jpg.json", "a/x.png.json", "b/x.jpg.json", "b/y.jpg.json"]  # x.jpg named twice: once
    assert len(list((out / "heads").rglob("*.npz"))) == 4
    assert {json.loads((out / name).read_text())["image_file"] for name in written} == {
        "a/x.jpg", "a/x.png", "b/x.jpg", "b/y.jpg"}
    # the outputs import onto the right images
    project = tmp_path / "p.deepmark"
    assert cli.main(["project", "init", str(project), "--root", str(root)]) == 0
    done = deepmark("import", str(out), "--format", "predictions", "--images", str(root), "--project", str(project),
                    "--no-seed", "--quiet")
    assert done.returncode == 0, done.stderr
    with Project.open(project) as opened:
        paths = {opened.images.get(i).path: i for i in opened.images.ids()}
        assert len(paths) == 4
        for name in written:
            stored = json.loads((out / name).read_text())
            scores = sorted(round(v["score"], 5) for k, v in stored.items() if k.startswith("item"))
            image_id = next(i for p, i in paths.items() if p.endswith(stored["image_file"]))
            kept = sorted(round(p.score, 5) for p in opened.predictions.for_image(image_id))
            assert kept == scores


def test_predict_with_distinct_stems_keeps_plain_names(tiny_onnx, df2_folder, tmp_path):
    out = tmp_path / "pred"
    assert deepmark("predict", str(df2_folder / "image"), "--model", str(tiny_onnx), "--out", str(out),
                    "--quiet").returncode == 0
    assert sorted(p.name for p in out.glob("*.json")) == sorted(
        f"{p.stem}.json" for p in (df2_folder / "image").glob("*.jpg"))
