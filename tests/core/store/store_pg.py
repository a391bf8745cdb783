"""A throwaway PostgreSQL server for the store tests: ``initdb`` in a temporary folder, ``pg_ctl start`` on
a free local port, stopped and deleted afterwards. Run as a non-root user when the tests run as root
(PostgreSQL refuses root): the ``postgres`` account that Debian's package creates, else ``nobody``.

``DEEPMARK_TEST_POSTGRES_URL`` (an admin URL such as ``postgresql://user@host:5432/postgres``) uses an
existing server instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

USER = "deepmark"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
                        if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _service_account() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running server; ``admin_url`` reaches its ``postgres`` database."""

    admin_url: str
    data_dir: Path | None = None
    bin_dir: Path | None = None
    account: pwd.struct_passwd | None = None

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"

    def stop(self) -> None:
        if self.data_dir is None:
            return
        _run(self, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
             check=False)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _run(server: Server, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    account = server.account
    kwargs = {"user": account.pw_uid, "group": account.pw_gid} if account is not None else {}
    env = {**os.environ, "LC_ALL": "C"}
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60, env=env, **kwargs)


def start_server() -> Server | str:
    """A started server, or the reason none could be started (for a skip message)."""
    if os.environ.get("DEEPMARK_TEST_POSTGRES_URL"):
        return Server(os.environ["DEEPMARK_TEST_POSTGRES_URL"])
    bin_dir = find_binaries()
    if bin_dir is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on "
                "PATH; install Debian's postgresql package (bash .ci/postgres.sh) to run these tests on PostgreSQL")
    account = _service_account() if os.geteuid() == 0 else None
    if os.geteuid() == 0 and account is None:
        return "running as root and no 'postgres' or 'nobody' account to run the PostgreSQL server as"
    base = Path(tempfile.mkdtemp(prefix="deepmark-pg-"))
    data = base / "data"
    data.mkdir()
    if account is not None:
        for path in (base, data):
            os.chown(path, account.pw_uid, account.pw_gid)
    server = Server("", data, bin_dir, account)
    try:
        _run(server, [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--no-instructions"])
        for _attempt in range(3):
            port = _free_port()
            options = (f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            started = _run(server, [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                    str(base / "server.log"), "-w", "-t", "30", "start"], check=False)
            if started.returncode == 0:
                server.admin_url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
                return server
        log = (base / "server.log").read_text(errors="replace")[-2000:] if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        return f"PostgreSQL server did not start: {started.stderr.strip()} {log}"
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        shutil.rmtree(base, ignore_errors=True)
        return f"initdb failed: {exc} {detail}"
