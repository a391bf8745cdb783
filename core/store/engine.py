"""Engines for the annotation store: a SQLite project file (the default) or a PostgreSQL URL.

SQLite: WAL journal (readers never block the writer), foreign keys on, ``synchronous`` NORMAL by default
(a committed edit survives a killed process; FULL also survives a power cut, at about one fsync per edit),
and write transactions that start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout
instead of failing half-way. Two engines share the file: ``write`` (immediate) and ``read`` (deferred).

PostgreSQL: one engine for both; ``lock_timeout`` makes a write that waits on another annotator's row
lock fail after a while (it is then retried, and reported as ``DatabaseLockedError``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import platformdirs
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from deepmark.core.store.errors import DatabaseLockedError, StoreError

APP_NAME = "deepmark-studio"
PROJECT_SUFFIX = ".deepmark"
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_PG_LOCK_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
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
    """``read`` and ``write`` engines of one database (the same engine except on SQLite)."""

    url: str
    read: Engine
    write: Engine

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    def dispose(self) -> None:
        self.read.dispose()
        if self.write is not self.read:
            self.write.dispose()


def _sqlite_engine(url: str, busy_timeout_s: float, synchronous: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
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
        return Engines(url, _sqlite_engine(url, busy, synchronous.upper(), immediate=False),
                       _sqlite_engine(url, busy, synchronous.upper(), immediate=True))
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
