"""A DeepMark project: one database (a SQLite file by default, or a PostgreSQL URL) and a root folder.

    project = Project.create("shirts.deepmark")            # or Project.open(...), or a postgresql:// URL
    image = project.images.get(1)
    receipt = project.annotations.set_landmark(item_id, 3, x=120.5, y=80.0, expected_version=image.version)
    project.history.undo(image.id)                         # works in a later session too

Every public write is its own transaction, retried while the database is locked (``lock_timeout_s``,
then ``DatabaseLockedError``). Image paths are stored relative to the project root: by default the
folder holding the SQLite file, or the ``root`` given at creation (stored in the project); ``root=`` on
open overrides it for this session (another mount point of the same images).

Opening reads before it writes: a damaged project (``DamagedProjectError``) or one from a newer program is
refused untouched, and a healthy one at the current revision is only read. A healthy older one is upgraded.
A project this process cannot write (``read_only``: a read-only file, folder or medium) opens for reading;
every write is then refused with ``ReadOnlyProjectError`` naming the file.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session

from deepmark.core.store import schema
from deepmark.core.store.engine import Engines, create_engines, display_url, project_url, retry_locked, sqlite_path
from deepmark.core.store.errors import NotAProjectError, ReadOnlyProjectError, SchemaVersionError, StoreError
from deepmark.core.store.models import ProjectSetting

T = TypeVar("T")
_SQLITE_HEADER = b"SQLite format 3\x00"
_PG_INIT_LOCK = 0x6465_6570  # advisory lock id serialising concurrent project initialisation


def default_author() -> str:
    """The login name, for edits made without an explicit author."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


class Project:
    """An open project. Use ``Project.create`` / ``Project.open``; close it (or use ``with``)."""

    def __init__(self, engines: Engines, root: Path, lock_timeout_s: float, author: str,
                 created_now: bool = False) -> None:
        from deepmark.core.store.annotations import AnnotationRepository
        from deepmark.core.store.doubts import DoubtRepository
        from deepmark.core.store.editlog import HistoryRepository
        from deepmark.core.store.images import ImageRepository
        from deepmark.core.store.predictions import ModelRunRepository, PredictionRepository
        from deepmark.core.store.presets import PresetRepository
        from deepmark.core.store.training import TrainingRepository

        self.engines = engines
        self.root = root
        self.lock_timeout_s = lock_timeout_s
        self.author = author
        self.created_now = created_now  # this open created the schema
        self.images = ImageRepository(self)
        self.annotations = AnnotationRepository(self)
        self.predictions = PredictionRepository(self)
        self.model_runs = ModelRunRepository(self)
        self.presets = PresetRepository(self)
        self.history = HistoryRepository(self)
        self.doubts = DoubtRepository(self)  # per-image doubt scores (revision 0005)
        self.training = TrainingRepository(self)  # retraining jobs and model evaluations

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, target: str | Path | None = None, root: str | Path | None = None, *, exist_ok: bool = False,
               **options) -> Project:
        """Create a project (SQLite file path, database URL, or None for the default file).

        ``root`` is stored in the project (default: the SQLite file's folder, or the current folder for
        a server database). Raises StoreError when the project exists and ``exist_ok`` is False.
        """
        url = project_url(target)
        path = sqlite_path(url)
        if not exist_ok and path is not None and path.exists() and path.stat().st_size > 0:
            raise StoreError(f"{path}: a project file already exists (open it instead)", path=path)
        project = cls.open(target, root=root, create=True, **options)
        if not exist_ok and not project.created_now:
            project.close()
            raise StoreError(f"{display_url(url)}: already holds a DeepMark project (open it instead)", path=path)
        return project

    @classmethod
    def open(cls, target: str | Path | None = None, *, root: str | Path | None = None, create: bool = False,
             upgrade: bool = True, author: str | None = None, lock_timeout_s: float = 10.0,
             synchronous: str = "NORMAL") -> Project:
        """Open a project; with ``create`` an absent or empty one is initialised.

        Raises NotAProjectError (no such file, not a database, another program's database),
        SchemaVersionError (written by a newer DeepMark Studio, or older with ``upgrade=False``),
        DamagedProjectError (tables, columns or the version row missing or doubled; nothing is written),
        ReadOnlyProjectError (a read-only project that would need creating or upgrading) and
        DatabaseLockedError (another process holds the database for longer than ``lock_timeout_s``).
        """
        url = project_url(target)
        where = display_url(url)
        path = sqlite_path(url)
        if path is not None:
            _check_sqlite_file(path, create)
        engines = create_engines(url, lock_timeout_s, synchronous)
        try:
            created = retry_locked(lambda: _prepare_schema(engines, where, create, upgrade, root, path),
                                   lock_timeout_s, where, path)
            engines.read.dispose()  # a connection made before the write engine switched the file to WAL
        except (DatabaseError, OperationalError) as exc:
            engines.dispose()
            why = f"; {engines.read_only}" if engines.read_only else ""
            raise NotAProjectError(f"{where}: cannot be opened as a project ({exc.orig}{why})", path=path) from None
        except BaseException:
            engines.dispose()
            raise
        project = cls(engines, Path("."), lock_timeout_s, author or default_author(), created)
        project.root = Path(root).expanduser().resolve() if root is not None else project._stored_root(path)
        return project

    def _stored_root(self, path: Path | None) -> Path:
        stored = self.setting("root")
        base = path.parent if path is not None else Path.cwd()
        return (base / stored).resolve() if stored else base.resolve()

    # -- transactions ----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The project file or URL (without password), for messages."""
        return display_url(self.engines.url)

    @property
    def file(self) -> Path | None:
        """The SQLite project file; None for a server database."""
        return sqlite_path(self.engines.url)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engines.dialect

    @property
    def read_only(self) -> str | None:
        """Why this project can only be read here ('the file is read-only'...); None when it can be written
        (a server database that refuses a write says so then, as ``ReadOnlyProjectError``)."""
        return self.engines.read_only

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in one write transaction (committed on return, rolled back on error),
        retried from the start while the database is locked. ReadOnlyProjectError when it can only be read."""
        if self.read_only is not None:
            raise ReadOnlyProjectError(f"{self.where}: not saved: the project can only be read ({self.read_only})",
                                       path=self.file)
        return retry_locked(lambda: _run(self.engines.write, fn), self.lock_timeout_s, self.where, self.file)

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in one read-only snapshot."""
        return retry_locked(lambda: _run(self.engines.read, fn), self.lock_timeout_s, self.where, self.file)

    def close(self) -> None:
        self.engines.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- settings and paths ----------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        return self.read(lambda s: s.scalar(select(ProjectSetting.value).where(ProjectSetting.key == key)))

    def set_setting(self, key: str, value: str) -> None:
        self.write(lambda s: s.merge(ProjectSetting(key=key, value=value)))

    def schema_revision(self) -> str | None:
        return self.read(lambda s: schema.current_revision(s.connection()))

    def relative_path(self, path: str | Path) -> str:
        """How ``path`` is stored: relative to the root with '/' separators, absolute when outside it."""
        full = Path(path).expanduser().resolve()
        try:
            return full.relative_to(self.root).as_posix()
        except ValueError:
            return full.as_posix()

    def absolute_path(self, stored: str) -> Path:
        """The file of a stored image path."""
        return Path(stored) if Path(stored).is_absolute() else self.root / stored


def _run(engine: Engine, fn: Callable[[Session], T]) -> T:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return fn(session)


def _check_sqlite_file(path: Path, create: bool) -> None:
    if path.is_dir():
        raise NotAProjectError(f"{path}: is a folder, not a project file", path=path)
    if not path.exists():
        if not create:
            raise NotAProjectError(f"{path}: no such project file (create one with `deepmark project init`)",
                                   path=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        raise NotAProjectError(f"{path}: not a DeepMark project (not a SQLite database file)", path=path)


def _prepare_schema(engines: Engines, where: str, create: bool, upgrade: bool, root, path: Path | None) -> bool:
    """Check (and create or upgrade) the schema in one transaction; True when created now. A project at
    the current revision is only read, so opening one never waits for another program's write."""
    with engines.read.connect() as connection:
        revision = schema.check_revision(connection, where, path)
    if revision == schema.head_revision():
        return False
    if revision is None and not create:
        raise NotAProjectError(f"{where}: empty database, not a DeepMark project "
                               "(create one with `deepmark project init`)", path=path)
    if engines.read_only is not None:
        needs = (f"an upgrade from schema {revision} to {schema.head_revision()}" if revision is not None
                 else "creating")
        raise ReadOnlyProjectError(f"{where}: needs {needs}, but can only be read here ({engines.read_only}); "
                                   "open it once where it can be written", path=path)
    with engines.write.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INIT_LOCK})
        revision = schema.check_revision(connection, where, path)
        if revision is None:
            if not create:
                raise NotAProjectError(f"{where}: empty database, not a DeepMark project "
                                       "(create one with `deepmark project init`)", path=path)
            schema.upgrade(connection)
            stored = _root_setting(root, path)
            if stored is not None:
                connection.execute(ProjectSetting.__table__.insert(), {"key": "root", "value": stored})
            return True
        if revision != schema.head_revision():
            if not upgrade:
                raise SchemaVersionError(f"{where}: schema revision {revision!r} is older than this program's "
                                         f"{schema.head_revision()!r}; open it with upgrade allowed", path=path)
            schema.upgrade(connection)
        return False


def _root_setting(root, path: Path | None) -> str | None:
    """The stored root: relative to the project file's folder when inside it, else absolute."""
    if root is None:
        return None
    full = Path(root).expanduser().resolve()
    if path is not None:
        try:
            return full.relative_to(path.parent.resolve()).as_posix() or "."
        except ValueError:
            pass
    return full.as_posix()
