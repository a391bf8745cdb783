"""The wheel works anywhere: built from the checkout, installed into a fresh virtual environment, and run from
an empty folder with no way back to the checkout (``deepmark`` is the only import name it installs)."""

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERIC_NAMES = {"core", "app", "resources", "tests", "packaging", "bench"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("deepmark_studio-*.whl")
    return found


def test_the_wheel_installs_one_import_name_with_its_resources(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"deepmark"}, top
    assert not GENERIC_NAMES & top
    for resource in ("taxonomy/deepfashion2.json", "taxonomy/groupings/semantic62.json",
                     "models/deepmark-default-fp32.onnx", "models/deepmark-default-int8.onnx",
                     "demo/image/000001.jpg", "demo/annos/000001.json", "icons/deepmark-256.png"):
        assert f"deepmark/resources/{resource}" in names, resource
    assert "deepmark/core/store/migrations/versions/0001_initial_schema.py" in names
    assert "deepmark/core/store/migrations/script.py.mako" in names
    assert not [n for n in names if n.startswith("deepmark/resources/models/training/")]  # the checkpoint stays out


def _setup_venv(where: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel and its dependencies installed as a user would (``pip install <wheel>``)."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    python = where / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "bin"


@pytest.mark.slow
def test_the_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    started = time.monotonic()
    bin_dir = _setup_venv(tmp_path / "venv", wheel)
    work = tmp_path / "work"  # an empty folder outside the checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEEPMARK_RESOURCES", "VIRTUAL_ENV")}
    env.update(QT_QPA_PLATFORM="offscreen", DEEPMARK_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path / "home"),
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    where = run("python", "-c", "import deepmark.core, deepmark.app; print(deepmark.core.__file__)").stdout
    assert str(ROOT) not in where and str(bin_dir.parent) in where
    generic = run("python", "-c", "import importlib.util as u; print([n for n in ('core', 'app', 'resources') "
                                  "if u.find_spec(n)])").stdout
    assert generic.strip() == "[]"  # nothing generic importable

    synth = run("deepmark", "synth", "--n", "3", "--out", "synth", "--width", "192", "--height", "192", "--quiet")
    assert synth.returncode == 0, synth.stderr
    images = sorted((work / "synth" / "image").glob("*.jpg"))
    assert len(images) == 3
    predict = run("deepmark", "predict", str(images[0]), "--out", "pred")
    assert predict.returncode == 0, predict.stderr
    assert any((work / "pred").glob("*.json"))
    predicted_all = run("deepmark", "predict", "synth/image", "--out", "pred-all")
    assert predicted_all.returncode == 0, predicted_all.stderr
    evaluated = run("deepmark", "eval", "synth", "pred-all", "--json", "metrics.json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((work / "metrics.json").read_text())

    assert run("deepmark", "project", "init", "p.db", "--root", "synth").returncode == 0
    imported = run("deepmark", "import", "synth", "--project", "p.db")
    assert imported.returncode == 0, imported.stderr
    exported = run("deepmark", "export", "out", "--project", "p.db", "--status", "new")
    assert exported.returncode == 0, exported.stderr
    assert list((work / "out").rglob("*.json"))

    smoke = run("deepmark-studio", "--smoke", timeout=300)
    assert smoke.returncode == 0 and smoke.stdout.startswith("smoke ok: 8 demo images"), smoke.stdout + smoke.stderr
    studio = subprocess.Popen([str(bin_dir / "deepmark-studio"), "--demo"], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(15)
        assert studio.poll() is None, studio.communicate()  # still running: the window is up
    finally:
        studio.terminate()
        _, err = studio.communicate(timeout=60)
    assert "Traceback" not in err, err
    print(f"wheel install + commands: {time.monotonic() - started:.0f} s")
