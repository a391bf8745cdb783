"""Post-processing parameters from the command line: a base set (the model's own, when the command knows the
model), then ``--params FILE.json``, then ``--set name=value``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DecodeError


def read_params_file(path: str | Path, base: PostprocessParams | None = None) -> PostprocessParams:
    """``base`` (default ``PostprocessParams()``) with the fields of a JSON object file (e.g. a ``tune
    --best-params`` file); DecodeError naming the file (also its ``path``) when it is unreadable or wrong."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"{path}: cannot read parameters ({exc})", path=path) from None
    return PostprocessParams.from_mapping(values, base, source=path)


def params_from_options(params_file: str | None, assignments: Sequence[str] | None,
                        base: PostprocessParams | None = None) -> PostprocessParams:
    """``base`` (default ``PostprocessParams()``), then the ``--params`` file's fields, then each ``--set
    name=value`` (later wins)."""
    params = read_params_file(params_file, base) if params_file else (base or PostprocessParams())
    return PostprocessParams.from_assignments(assignments or (), params, source="--set")


def describe_choice(base_origin: str, params_file: str | None, assignments: Sequence[str] | None) -> str:
    """Which parameters a command used, in words: the base, then what overrode it."""
    parts = [base_origin]
    if params_file:
        parts.append(f"then {params_file}")
    if assignments:
        parts.append("then --set " + " ".join(assignments))
    return ", ".join(parts)
