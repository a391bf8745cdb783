"""Before Qt opens a window: missing X11 libraries or no display end in one line naming them (no Qt abort)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepmark.app.platform_check import debian_package, platform_name


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11.so.6", "libx11-6"), ("libdbus-1.so.3", "libdbus-1-3"), ("libEGL.so.1", "libegl1"),
])
def test_debian_package_names(soname, package):
    assert debian_package(soname) == package


def test_platform_follows_qt_order():
    assert platform_name({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert platform_name({"QT_QPA_PLATFORM": "wayland;xcb"}) == "wayland"
    if sys.platform.startswith("linux"):
        assert platform_name({}) == "xcb"
        assert platform_name({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}) == "wayland"


def _studio(tmp_path: Path, ldd_output: str, display: str | None) -> subprocess.CompletedProcess:
    """``deepmark-studio --demo`` as a user starts it on a desktop (no QT_QPA_PLATFORM), with an ``ldd`` that
    reports ``ldd_output`` first on the PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    ldd = fake / "ldd"
    ldd.write_text(f"#!/bin/sh\nprintf '{ldd_output}'\n")
    ldd.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = f"{fake}{os.pathsep}{env.get('PATH', '')}"
    if display is not None:
        env["DISPLAY"] = display
    script = Path(sys.executable).parent / "deepmark-studio"
    return subprocess.run([str(script), "--demo"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_missing_xcb_libraries_are_named_with_the_install_command(tmp_path):
    done = _studio(tmp_path, "\\tlibxcb-cursor.so.0 => not found\\n\\tlibxcb-icccm.so.4 => not found\\n"
                             "\\tlibc.so.6 => /lib/libc.so.6\\n", display=":0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4" in lines[0] and "libxcb-cursor0" in lines[0]
    assert "libxcb-icccm4" in lines[0] and "qt.qpa" not in done.stderr and "Traceback" not in done.stderr
    if Path("/etc/debian_version").exists():
        assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_no_display_is_one_line(tmp_path):
    done = _studio(tmp_path, "\\tlibc.so.6 => /lib/libc.so.6\\n", display=None)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "DISPLAY is not set" in done.stderr
    assert "QT_QPA_PLATFORM=offscreen" in done.stderr
