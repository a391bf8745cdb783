"""Before Qt builds a window: can its platform plugin load? On Linux the default plugin, xcb, needs X11
libraries that a fresh desktop install may lack (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ...);
without them Qt prints a page of diagnostics and aborts. This check names the missing libraries and the
command that installs them in one line instead.

It only reads: which plugin Qt will use (``QT_QPA_PLATFORM``, else xcb on Linux unless the session is
Wayland), whether a display is set, and what ``ldd`` says the plugin's libraries need. Anything it cannot
tell (no ``ldd``, another system) passes, and Qt decides.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)
# Debian's packages for the libraries Qt's xcb plugin needs (README, "System libraries").
XCB_DEBIAN_PACKAGES = (
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-randr0",
    "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0", "libxcb-xkb1", "libxkbcommon-x11-0",
    "libegl1", "libfontconfig1", "libdbus-1-3",
)


def platform_name(env: Mapping[str, str]) -> str:
    """The platform plugin Qt will load: ``QT_QPA_PLATFORM``'s first choice (before ';' and ':'), else
    'wayland' in a Wayland session, else 'xcb' on Linux (Qt's own default order)."""
    wanted = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if wanted:
        return wanted
    if sys.platform.startswith("linux"):
        return "wayland" if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland" else "xcb"
    return ""


def debian_package(soname: str) -> str:
    """Debian's package for a shared library: its name lower-cased with the major version appended (with a
    hyphen after a digit), e.g. libxcb-icccm.so.4 → libxcb-icccm4, libX11.so.6 → libx11-6."""
    base, _, version = soname.partition(".so.")
    base = base.lower()
    major = version.split(".")[0] if version else ""
    return f"{base}-{major}" if base[-1:].isdigit() and major else f"{base}{major}"


def xcb_plugin() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(library: Path) -> list[str] | None:
    """Sonames ``ldd`` cannot find for ``library`` (sorted, once each); None when ``ldd`` cannot tell."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted(set(_NOT_FOUND.findall(done.stdout)))


def install_hint(packages: list[str]) -> str:
    if Path("/etc/debian_version").exists():
        return f"install them with: sudo apt-get install {' '.join(packages)}"
    return f"install your system's packages for {', '.join(packages)} (Debian names; README, 'System libraries')"


def platform_problem(env: Mapping[str, str] | None = None) -> str | None:
    """One line saying why Qt's platform plugin will not load, or None when nothing is known to be wrong."""
    env = os.environ if env is None else env
    if platform_name(env) != "xcb":
        return None
    plugin = xcb_plugin()
    if plugin is not None:
        missing = missing_libraries(plugin)
        if missing:
            packages = sorted({debian_package(s) for s in missing})
            return (f"DeepMark Studio cannot open a window: Qt's xcb platform plugin needs {', '.join(missing)}, "
                    f"which this system lacks; {install_hint(packages)}")
    if not env.get("DISPLAY"):
        return ("DeepMark Studio cannot open a window: no X display (DISPLAY is not set); start it from a desktop "
                "session, or set QT_QPA_PLATFORM=offscreen to run without one")
    return None
