"""A duration as people read it in a progress line ("45 s", "3 min 07 s", "2 h 05 min")."""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """``seconds`` rounded to whole seconds, in the two largest units; "…" when not known (None)."""
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
