"""Engines for the annotation store: a SQLite project file (the default) or a PostgreSQL URL.

SQLite: WAL journal (readers never block the writer), foreign keys on, ``synchronous`` NORMAL by default
(a committed edit survives a killed process; FULL also survives a power cut, at about one fsync per edit),
and write transactions that start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout
instead of failing half-way. Two engines share the file: ``write`` (immediate) and ``read`` (deferred).
Only the write engine switches a file to WAL, so reading (opening included) never changes the file.

A project file this process cannot write (a read-only file, folder or medium: ``read_only_reason``) is
opened with SQLite's ``mode=ro``, and with ``immutable=1`` where SQLite could not otherwise read a WAL
file there (no ``-shm`` beside it and no way to create one, and no ``-wal`` content to miss). A write
refused by the database (SQLite's read-only errors, PostgreSQL's read-only transaction or missing
privilege) is reported as ``ReadOnlyProjectError`` naming the project.

PostgreSQL: one engine for both; ``lock_timeout`` makes a write that waits on another annotator's row
lock fail after a while (it is then retried, and reported as ``DatabaseLockedError``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import platformdirs
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

from deepmark.core.store.errors import DatabaseLockedError, ReadOnlyProjectError, StoreError

APP_NAME = "deepmark-studio"
PROJECT_SUFFIX = ".deepmark"
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_PG_LOCK_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_PG_READ_ONLY_STATES = {"25006", "42501"}  # read-only SQL transaction, insufficient privilege
_SQLITE_READONLY = 8  # SQLITE_READONLY, the primary code of every "attempt to write a readonly database"
T = TypeVar("T")


def default_project_path() -> Path:
    """The default SQLite project file: ``<user data dir>/deepmark-studio/project.deepmark``."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / f"project{PROJECT_SUFFIX}"


def project_url(target: str | Path | None) -> str:
    """A SQLAlchemy URL for ``target``: a URL as is (``postgresql+psycopg://...``), a path → SQLite file,
    ``None`` → the default project file. A plain ``postgresql://`` URL is given the psycopg 3 driver."""
    if target is None:
        target = default_project_path()
    text = str(target)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise StoreError(f"{text}: not a database URL ({exc})") from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"{url.render_as_string(hide_password=True)}: only SQLite and PostgreSQL are supported")
    return url.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL for messages: the file path for SQLite, the URL without password otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The project file of a SQLite URL (None for other back ends and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


@dataclass(frozen=True)
class Engines:
    """``read`` and ``write`` engines of one database (the same engine except on SQLite). ``read_only``:
    why this process cannot write the SQLite file (None when it can, and on a server)."""

    url: str
    read: Engine
    write: Engine
    read_only: str | None = None

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    def dispose(self) -> None:
        self.read.dispose()
        if self.write is not self.read:
            self.write.dispose()


def read_only_reason(path: Path) -> str | None:
    """Why this process cannot write the SQLite file ``path`` and the journal beside it; None when it can
    (or the file does not exist yet)."""
    if not path.exists():
        return None
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it lies on a read-only medium"
    except (OSError, AttributeError):  # no statvfs (Windows): the access checks below still answer
        pass
    if not _can(path, os.W_OK):
        return "the file is read-only"
    if not _can(path.parent, os.W_OK | os.X_OK):
        return "its folder is read-only (SQLite writes its journal beside the file)"
    return None


def _can(path: Path, mode: int) -> bool:
    """``os.access`` for this process's effective user (what opening the file will be checked against)."""
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _read_only_uri(path: Path) -> str:
    """A SQLite URI opening ``path`` read-only; ``immutable=1`` where WAL reading could not work otherwise."""
    shm, wal = (path.with_name(path.name + suffix) for suffix in ("-shm", "-wal"))
    wal_content = wal.exists() and wal.stat().st_size > 0
    # immutable skips locking and the -shm index: right only when nobody can write here and no WAL content
    # would be missed; otherwise SQLite reads through the -shm (and fails, named, when it cannot)
    immutable = not _can(path.parent, os.W_OK | os.X_OK) and not shm.exists() and not wal_content
    return f"file:{quote(path.as_posix(), safe='/:')}?mode=ro" + ("&immutable=1" if immutable else "")


def _sqlite_engine(url: str, busy_timeout_s: float, synchronous: str, immediate: bool,
                   read_only: bool = False) -> Engine:
    if read_only:
        uri = _read_only_uri(sqlite_path(url))
        engine = create_engine("sqlite://", poolclass=QueuePool, creator=lambda: sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, check_same_thread=False))
    else:
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        if immediate and not read_only:  # switching the journal mode writes the file: reading must not
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not read_only:  # SQLite refuses to set it on a read-only connection (and nothing is synced)
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_engines(url: str, lock_timeout_s: float = 10.0, synchronous: str = "NORMAL") -> Engines:
    """Engines for ``url`` (see the module docstring); ``lock_timeout_s`` bounds one wait for a lock."""
    if synchronous.upper() not in SYNCHRONOUS:
        raise StoreError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        busy = max(0.05, lock_timeout_s / 3)
        path = sqlite_path(url)
        reason = read_only_reason(path) if path is not None else None
        return Engines(url, _sqlite_engine(url, busy, synchronous.upper(), False, reason is not None),
                       _sqlite_engine(url, busy, synchronous.upper(), True, reason is not None), reason)
    options = f"-c lock_timeout={max(1, int(lock_timeout_s * 1000 / 3))}"
    engine = create_engine(url, pool_pre_ping=True, connect_args={"options": options, "connect_timeout": 10})
    return Engines(url, engine, engine)


def is_lock_error(exc: BaseException) -> bool:
    """True for "database is locked" (SQLite) and lock timeout / deadlock / serialization failures (PostgreSQL)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return "locked" in text or "busy" in text
    return getattr(orig, "sqlstate", None) in _PG_LOCK_STATES


def is_read_only_error(exc: BaseException) -> bool:
    """True for a write the database refuses because it can only be read (file, medium, role, standby)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_READONLY) or "readonly" in str(orig).lower()
    return getattr(orig, "sqlstate", None) in _PG_READ_ONLY_STATES


def retry_locked(fn: Callable[[], T], lock_timeout_s: float, where: str, path: Path | None = None) -> T:
    """Run ``fn`` (one whole transaction), retrying with back-off while the database is locked, for at
    most ``lock_timeout_s``; then raise DatabaseLockedError naming ``where`` (``path``: the SQLite file)."""
    deadline = time.monotonic() + lock_timeout_s
    delay, attempts = 0.02, 0
    while True:
        attempts += 1
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            if is_read_only_error(exc):
                detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
                raise ReadOnlyProjectError(f"{where}: the project can only be read here ({detail}); nothing was "
                                           "saved", path=path) from None
            if not is_lock_error(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise DatabaseLockedError(
                    f"{where}: the database is locked by another program or annotator; gave up after "
                    f"{attempts} attempts in {lock_timeout_s:g} s (close the other writer or try again)",
                    path=path,
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
