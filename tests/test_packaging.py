"""Packaging: the desktop entry and icon, and (slow) a PyInstaller build of the app that passes its smoke run."""

import configparser
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def test_desktop_entry_and_icon():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # desktop keys are case-sensitive
    entry.read(PACKAGING / "deepmark-studio.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "DeepMark Studio"
    assert desktop["Exec"].split()[0] == "deepmark-studio" and desktop["Icon"] == "deepmark-studio"
    assert desktop["Terminal"] == "false" and desktop["Categories"].endswith(";")
    svg = ROOT / "resources" / "icons" / "deepmark.svg"
    png = ROOT / "resources" / "icons" / "deepmark-256.png"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml") and "<svg" in svg.read_text(encoding="utf-8")
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (256, 256) and image.mode == "RGBA"


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages under their one import name; a new folder must be listed too."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {"deepmark." + ".".join(init.parent.relative_to(ROOT).parts)
               for name in ("core", "app") for init in (ROOT / name).rglob("__init__.py")}
    assert set(config["packages"]) == folders | {"deepmark.resources"}
    assert config["package-dir"] == {"deepmark.core": "core", "deepmark.app": "app", "deepmark.resources": "resources"}


@pytest.mark.slow
def test_frozen_build_passes_its_smoke_run(tmp_path):
    """Build the one-folder bundle (about 2.5 min on 2 cores) and run ``--smoke`` from it, in a clean
    environment: no source tree on the path, so every module and resource must come from the bundle."""
    pyinstaller = shutil.which("pyinstaller", path=str(Path(sys.executable).parent)) or shutil.which("pyinstaller")
    if pyinstaller is None:
        pytest.skip("PyInstaller is not installed (pip install -e '.[test]' installs it)")
    started = time.monotonic()
    build = subprocess.run([pyinstaller, str(PACKAGING / "deepmark-studio.spec"), "--noconfirm",
                            "--distpath", str(tmp_path / "dist"), "--workpath", str(tmp_path / "build")],
                           cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stderr[-4000:]
    binary = tmp_path / "dist" / "deepmark-studio" / "deepmark-studio"
    assert binary.is_file() and (binary.parent / "_internal" / "deepmark" / "resources" / "models").is_dir()
    assert not (binary.parent / "_internal" / "torch").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEEPMARK_RESOURCES")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    smoke = subprocess.run([str(binary), "--smoke"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert smoke.stdout.startswith("smoke ok: 8 demo images, model deepmark-default"), smoke.stdout
    print(f"frozen build + smoke run: {time.monotonic() - started:.0f} s")
