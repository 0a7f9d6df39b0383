"""A PostgreSQL cluster of a test's own: ``initdb`` in a temporary folder, on a free port.

A test that restarts PostgreSQL must never restart the shared server every engineer's tests use,
so it starts a cluster of its own: ``initdb`` (trust authentication, no fsync: nothing here is
worth keeping past the test, though an acknowledged commit survives a crash of the server),
``pg_ctl start`` listening on 127.0.0.1 on a free port with its unix socket in the same folder,
and ``pg_ctl restart`` (``-m fast`` or ``-m immediate``, the latter a crash with recovery on
start) or ``stop``/``start`` at any moment of the test.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) every PostgreSQL
program runs as the ``postgres`` OS user (``runuser -u postgres --``) in a folder that user owns.
The binaries are found on PATH or under /usr/lib/postgresql/<version>/bin. Without them the tests
that need a cluster skip and say how to install them, except under CI (``CI`` set), where their
absence is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from .server import free_port

INSTALL_HINT = "apt-get install -y postgresql"
OS_USER = "postgres"  # who runs PostgreSQL's programs when the tests run as root
START_TIMEOUT_SECONDS = 60
# Settings for a throwaway cluster: nothing is flushed to disk, since a test's data is never kept
# past the test and the machine does not crash under it. Commits stay synchronous: a commit is
# written to the kernel before it is acknowledged, so it survives a crash of PostgreSQL itself
# (``restart("immediate")``), as in production. With synchronous_commit=off such a crash loses
# the last acknowledged commits, and a test would see a settled generation come back unsettled.
SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: initdb's on PATH, else the newest version's."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    candidates = [
        path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb") if path.exists()
    ]
    candidates = [folder for folder in candidates if (folder / "pg_ctl").exists()]
    return max(candidates, key=version) if candidates else None


def require_bin_dir() -> Path:
    """The binaries' folder; else skip (or, under CI, fail) saying what is missing."""
    folder = find_bin_dir()
    problem = None
    if folder is None:
        problem = f"PostgreSQL's initdb and pg_ctl are not installed: {INSTALL_HINT}"
    elif os.geteuid() == 0 and shutil.which("runuser") is None:
        problem = "runuser is missing (PostgreSQL must not run as root): apt-get install util-linux"
    elif os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(OS_USER)
        except KeyError:
            problem = f"there is no {OS_USER!r} OS user to run PostgreSQL as: {INSTALL_HINT}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {problem}")
        pytest.skip(f"{problem}; in CI this fails instead")
    assert folder is not None
    return folder


class PostgresCluster:
    """A cluster in ``folder`` (data in ``folder/data``, socket and log beside it) on ``port``."""

    def __init__(self, bin_dir: Path, folder: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = port
        self.data = folder / "data"
        self.logfile = folder / "postgresql.log"
        self._as_os_user = os.geteuid() == 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_os_user:
            command = ["runuser", "-u", OS_USER, "--", *command]
        # Output to a file, not a pipe: the server pg_ctl starts would inherit the pipe and hold
        # it open, and reading it to its end would wait for the server to stop.
        with tempfile.TemporaryFile(mode="w+") as output:
            returncode = subprocess.call(
                command, cwd=self.folder, stdout=output, stderr=subprocess.STDOUT
            )
            if returncode != 0:
                output.seek(0)
                raise RuntimeError(
                    f"{program} {' '.join(args)} failed ({returncode}):\n"
                    f"{output.read()}\n{self.log()}"
                )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth", "trust",
            "--encoding", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
        self._pg_ctl("start", "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` (sessions disconnected, a clean shutdown), ``immediate`` (a crash:
        recovery on the next start) or ``smart`` (waits for sessions to end)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """Stop (as ``stop``) and start again on the same port and socket (pg_ctl keeps the
        options it was started with); waits until it accepts connections again."""
        self._pg_ctl("restart", "-m", mode)

    def _pg_ctl(self, action: str, *args: str) -> None:
        # -l on every action that starts the server: pg_ctl does not remember it.
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.logfile),
            "-w", "-t", str(START_TIMEOUT_SECONDS), *args,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def execute(self, sql: str, params: Sequence[object] = (), dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname), autocommit=True) as connection:
            connection.execute(sql, params)

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def running_postgres_cluster() -> Iterator[PostgresCluster]:
    """A new cluster, started, for the block; stopped and deleted on exit."""
    bin_dir = require_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="seedream-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, user=OS_USER, group=None)
            folder.chmod(0o700)
        cluster = PostgresCluster(bin_dir, folder, free_port())
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running:
                cluster.stop("immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
