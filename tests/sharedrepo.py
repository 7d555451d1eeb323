"""Drive a shared (PostgreSQL-registry) data repository the way its admin
and its users do: the real ``butler`` and ``pipetask`` command lines in
subprocesses, with the admin's environment or a user's clean one.
"""

from __future__ import annotations

__all__ = ["BIN", "admin_env", "client_env", "create_repo", "run"]

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
"""The environment's ``bin`` folder (python, butler, pipetask, bps, rbnodia)."""


def admin_env() -> dict[str, str]:
    """Return this process's environment plus ``rbnodia env``'s variables (the
    admin has run ``eval "$(rbnodia env)"``) and the environment on PATH.
    """
    from rbnodia.commands.info import environment

    return {**os.environ, **environment(), "TF_CPP_MIN_LOG_LEVEL": "2",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def client_env(home: str | os.PathLike) -> dict[str, str]:
    """Return a user's clean environment: the installed environment on PATH, a home
    of its own, nothing of rbnodia's or the Butler's (no RBNODIA_DIR, no
    DAF_BUTLER_CONFIG_PATH).  PYTHONPATH is kept only if this process has
    one: that is how a developer's checkout is installed (``make test`` has
    none).
    """
    env = {"PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def run(command: Sequence[str] | str, env: Mapping[str, str], *, cwd=None, timeout: float = 600,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (a list, or a string for ``bash -c``); on failure with
    ``check`` raise with the output tail.
    """
    args = ["bash", "-c", command] if isinstance(command, str) else [str(c) for c in command]
    done = subprocess.run(args, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def create_repo(root: str | os.PathLike, db_url: str, source: Mapping, *, namespace: str | None = None,
                seed: bool = True) -> Path:
    """Create a repository with a PostgreSQL registry and copy the simulated
    inputs into it, as doc/shared_repository.rst tells an admin to.

    Parameters
    ----------
    root : `str` or `os.PathLike`
        Repository folder (datastore root and ``butler.yaml``).
    db_url : `str`
        ``postgresql://`` URL of a database with ``btree_gist``.
    source : `~collections.abc.Mapping`
        Summary of `rbnodia.sim.write_simulated_repo` (``root``, ``collection``).
    namespace : `str`, optional
        Schema of the registry tables (created), so that several
        repositories share one database.
    seed : `bool`
        Create with a seed configuration that includes rbnodia's
        (``config/butler-seed.yaml``), so the repository itself declares
        rbnodia's storage classes; otherwise only the registry is set.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    seed_file = root.parent / f"{root.name}-seed.yaml"
    include = "includeConfigs: ${RBNODIA_DIR}/config/butler-seed.yaml\n" if seed else ""
    schema = f"  namespace: {namespace}\n" if namespace else ""
    seed_file.write_text(f"{include}registry:\n  db: {db_url}\n{schema}")
    env = admin_env()
    run([BIN / "butler", "create", root, "--seed-config", seed_file], env)
    run([BIN / "butler", "transfer-datasets", source["root"], root, "--collections", source["collection"],
         "--register-dataset-types", "--transfer", "copy"], env)
    return root
