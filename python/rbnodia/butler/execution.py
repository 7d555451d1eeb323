"""Run pipelines with the real ``pipetask`` command line, as users do."""

from __future__ import annotations

__all__ = ["PipetaskError", "pipeline_path", "pipetask_command", "run_pipetask"]

import importlib.resources
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


class PipetaskError(RuntimeError):
    """``pipetask`` exited with an error.

    Parameters
    ----------
    message : `str`
        The command and the tail of its output.
    output : `str`
        The whole output (stdout and stderr), kept as ``output``.
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def pipeline_path(name: str) -> Path:
    """Return the path of a packaged pipeline.

    Parameters
    ----------
    name : `str`
        Pipeline name, e.g. ``RealBogusNoDia`` or ``RealBogusNoDia.yaml``, or a
        path under ``pipelines/`` such as ``LSSTCam/ApPipe.yaml``.

    Returns
    -------
    path : `pathlib.Path`
        The pipeline's YAML file.
    """
    if not name.endswith(".yaml"):
        name += ".yaml"
    path = Path(str(importlib.resources.files("rbnodia").joinpath("pipelines", name)))
    if not path.exists():
        raise FileNotFoundError(f"No packaged pipeline {name!r} in {path.parent}.")
    return path


def _pipetask_executable() -> list[str]:
    candidate = Path(sys.executable).with_name("pipetask")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("pipetask")
    if found:
        return [found]
    raise FileNotFoundError("The pipetask command (lsst-ctrl-mpexec) is not installed in this environment.")


def pipetask_command(
    repo: str | os.PathLike,
    pipeline: str | os.PathLike,
    inputs: Sequence[str],
    output: str,
    *,
    data_query: str | None = None,
    jobs: int = 1,
    start_method: str = "forkserver",
    config: Mapping[str, str] | None = None,
    register_dataset_types: bool = True,
    log_level: str = "rbnodia=INFO",
) -> list[str]:
    """Return the ``pipetask run`` command line for these arguments.

    Parameters
    ----------
    repo : `str` or `os.PathLike`
        Butler repository.
    pipeline : `str` or `os.PathLike`
        Pipeline YAML file (a ``#label`` subset suffix allowed).
    inputs : `~collections.abc.Sequence` [`str`]
        Input collections (``-i``).
    output : `str`
        Output chained collection (``-o``).
    data_query : `str`, optional
        Data ID query (``-d``).
    jobs : `int`, optional
        Processes (``-j``).
    start_method : `str`, optional
        ``--start-method`` with ``jobs > 1``: ``forkserver`` forks each
        quantum's process from a server that has imported what a quantum
        needs once (`rbnodia.tasks.preload`); ``spawn`` (pipetask's
        default) starts each one from scratch.
    config : `~collections.abc.Mapping` [`str`, `str`], optional
        Config overrides, ``label:field`` -> value (``-c``).
    register_dataset_types : `bool`, optional
        Pass ``--register-dataset-types``.
    log_level : `str`, optional
        ``--log-level`` value.

    Returns
    -------
    command : `list` [`str`]
        The argument vector, ``pipetask`` first.
    """
    command = _pipetask_executable() + ["--long-log", "--log-level", log_level, "run",
                                        "-b", str(repo), "-i", ",".join(inputs), "-o", output,
                                        "-p", str(pipeline)]
    if data_query:
        command += ["-d", data_query]
    if jobs > 1:
        command += ["-j", str(jobs), "--start-method", start_method]
    if register_dataset_types:
        command.append("--register-dataset-types")
    for key, value in (config or {}).items():
        command += ["-c", f"{key}={value}"]
    return command


def run_pipetask(*args, stream: bool = True, env: Mapping[str, str] | None = None, **kwargs) -> str:
    """Run ``pipetask run`` (see `pipetask_command` for the arguments).

    Parameters
    ----------
    *args
        Positional arguments of `pipetask_command`.
    stream : `bool`
        Echo pipetask's output as it runs (progress for long runs).
    env : `~collections.abc.Mapping`, optional
        Extra environment variables.
    **kwargs
        Keyword arguments of `pipetask_command`.

    Returns
    -------
    output : `str`
        Combined stdout and stderr.

    Raises
    ------
    PipetaskError
        If pipetask fails.
    """
    command = pipetask_command(*args, **kwargs)
    from .environment import environment

    process_env = dict(os.environ)
    process_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for key, value in environment().items():  # $RBNODIA_DIR in pipeline imports; storage classes
        process_env.setdefault(key, value)
    process_env.update(env or {})
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=process_env) as process:
        for line in process.stdout:
            lines.append(line)
            if stream:
                sys.stdout.write(line)
                sys.stdout.flush()
        returncode = process.wait()
    output = "".join(lines)
    if returncode != 0:
        message = f"pipetask failed (exit {returncode}): {' '.join(command)}\n{output[-4000:]}"
        raise PipetaskError(message, output)
    return output
