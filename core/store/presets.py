"""Saved post-processing presets: named ``PostprocessParams`` values shared by everyone on the project, and
the defaults a model file recommends (``model_default_params``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DecodeError
from deepmark.core.formats.model_file import RECOMMENDED_PARAMS_KEY
from deepmark.core.store.errors import InvalidValueError, NotFoundError
from deepmark.core.store.models import Preset, utc_now
from deepmark.core.store.records import PresetRecord

if TYPE_CHECKING:
    from deepmark.core.formats.model_file import ModelInfo
    from deepmark.core.store.project import Project


def _record(row: Preset) -> PresetRecord:
    return PresetRecord(row.id, row.name, dict(row.params), row.created_at, row.updated_at)


def checked_params(params: PostprocessParams | Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """The JSON form of parameters (all fields), validated by ``PostprocessParams.from_mapping`` (a mapping's
    missing fields take the defaults); InvalidValueError naming ``source`` otherwise."""
    if isinstance(params, PostprocessParams):
        return asdict(params)
    try:
        return asdict(PostprocessParams.from_mapping(params, source=source))
    except DecodeError as exc:
        raise InvalidValueError(str(exc)) from None


def _stored_params(info: ModelInfo | None) -> PostprocessParams | None:
    """The model's metadata ``training["postprocess"]`` as parameters (fields it does not name at the paper's
    values); None when it names none or they are unusable."""
    stored = (info.training or {}).get(RECOMMENDED_PARAMS_KEY) if info is not None else None
    if not isinstance(stored, Mapping):
        return None
    try:
        return PostprocessParams.from_mapping(stored, PostprocessParams.all_techniques(),
                                              source="the model's recommended parameters")
    except DecodeError:
        return None  # a model with unusable recommendations still works, with the paper's values


def model_default_params(info: ModelInfo | None) -> PostprocessParams:
    """The parameters a model recommends: its metadata's ``training["postprocess"]`` (``PostprocessParams``
    fields, e.g. tuned on its validation set) when present and valid, else all four techniques and NMS at
    the paper's values (``PostprocessParams.all_techniques()``). Fields it does not name keep those values."""
    return _stored_params(info) or PostprocessParams.all_techniques()


def model_params_origin(info: ModelInfo | None, name: str = "the model") -> str:
    """Where ``model_default_params(info)`` comes from, in words (for a command's output)."""
    if _stored_params(info) is not None:
        return f"{name}'s own tuned parameters"
    return f"the paper's values, all four techniques + NMS ({name} names no usable parameters of its own)"


class PresetRepository:
    """Named parameter sets; saving a name that exists replaces its values."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def save(self, name: str, params: PostprocessParams | dict[str, Any]) -> PresetRecord:
        if not name or len(name) > 128:
            raise InvalidValueError(f"preset name must have 1 to 128 characters, got {name!r}")
        values = checked_params(params, source=f"preset {name!r}")

        def work(session: Session) -> None:
            now = utc_now()
            done = session.execute(update(Preset).where(Preset.name == name).values(params=values, updated_at=now),
                                   execution_options={"synchronize_session": False})
            if done.rowcount == 0:
                session.add(Preset(name=name, params=values, created_at=now, updated_at=now))
        self._project.write(work)
        return self.get(name)

    def get(self, name: str) -> PresetRecord:
        row = self._project.read(lambda s: s.scalars(select(Preset).where(Preset.name == name)).first())
        if row is None:
            raise NotFoundError(f"preset {name!r}: not in the project")
        return _record(row)

    def params(self, name: str) -> PostprocessParams:
        """The preset as ``PostprocessParams``."""
        return PostprocessParams.from_mapping(self.get(name).params, source=f"preset {name!r}")

    def list(self) -> list[PresetRecord]:
        rows = self._project.read(lambda s: s.scalars(select(Preset).order_by(Preset.name)).all())
        return [_record(r) for r in rows]

    def delete(self, name: str) -> None:
        self.get(name)
        self._project.write(lambda s: s.execute(delete(Preset).where(Preset.name == name)))


PROJECT_PARAMS_KEY = "postprocess_params"  # the project's own parameters (project settings table)


def model_recommends_params(info: ModelInfo | None) -> bool:
    """Whether the model file names recommended post-processing parameters of its own."""
    return info is not None and isinstance((info.training or {}).get(RECOMMENDED_PARAMS_KEY), Mapping)


def project_params(project: Project) -> PostprocessParams | None:
    """The post-processing parameters last used on ``project`` (None: never set, or unreadable now)."""
    import json

    text = project.setting(PROJECT_PARAMS_KEY)
    if not text:
        return None
    try:
        values = json.loads(text)
        return PostprocessParams.from_mapping({k: v for k, v in values.items()
                                               if k in PostprocessParams.field_names()},
                                              source=f"{project.where} parameters")
    except (ValueError, AttributeError, DecodeError):
        return None  # written by another version: the model's recommendation applies again


def set_project_params(project: Project, params: PostprocessParams) -> None:
    """Keep ``params`` as the project's post-processing parameters (one small write)."""
    import json

    project.set_setting(PROJECT_PARAMS_KEY, json.dumps(asdict(params)))
