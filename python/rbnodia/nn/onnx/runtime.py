"""Run serialised real/bogus ONNX graphs with ONNX Runtime, on all cores.

Needs only ``onnxruntime`` and numpy (no TensorFlow, no ``onnx``): this is
what a pipeline runs.  The graphs come from a model file (written by
`rbnodia.nn.onnx.translate`); each role is a `GraphVariants`: a plain graph
and, for networks that start with a 1-in/1-out convolution, a folded one
that takes batches of a multiple of ``fold`` stamps (the rest of a batch
goes through the plain graph; both compute the same function).

Both runners (`OnnxPredictor` and `OnnxSaliency`) cut a batch into chunks
of at most `CHUNK` stamps and run the chunks on ``threads`` Python threads
at once, each call on a single ONNX Runtime thread, instead of running one
call on ``threads`` intra-op threads.  The graphs are chains of small
operators, several of which (``ConvTranspose``'s col2im, ``MaxUnpool``,
elementwise ops on small images) ONNX Runtime runs on one thread only; whole
chunks in parallel keep every core busy (``benchmarks/bench_threading.py``
compares the two schemes).
"""

from __future__ import annotations

__all__ = [
    "CHUNK",
    "GRAPH_ROLES",
    "MIN_PIECE",
    "GraphSessions",
    "GraphVariants",
    "OnnxPredictor",
    "OnnxSaliency",
    "default_threads",
    "resolve_threads",
]

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)

CHUNK = 128
"""Most stamps per ONNX Runtime call: larger batches spill the first layers'
images out of the CPU caches and run slower (see doc/performance.rst)."""
MIN_PIECE = 16
"""Fewest stamps worth a thread of their own when a batch is split."""
GRAPH_ROLES = ("forward", "saliency", "saliency_rows")
"""The graphs of a model file: the forward pass (output ``outputs``), and
with it the saliency maps (``gradient``) or their row sums
(``saliency_row_sums``)."""


@dataclass(frozen=True)
class GraphVariants:
    """One graph of a model, serialised, plain and optionally folded.

    Attributes
    ----------
    plain : `bytes`
        The graph for any batch size.
    folded : `bytes` or `None`
        The same function for batches of a multiple of ``fold`` stamps.
    fold : `int`
        Stamps per folded batch entry; 0 without a folded graph.
    """

    plain: bytes
    folded: bytes | None = None
    fold: int = 0

    def __post_init__(self) -> None:
        if (self.folded is None) != (self.fold == 0) or self.fold < 0 or self.fold == 1:
            raise ValueError(f"fold must be 0 without a folded graph and above 1 with one, got {self.fold}.")


def default_threads() -> int:
    """Return the CPUs this process may run on.

    Returns
    -------
    threads : `int`
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Return ``threads``, or `default_threads` for `None` or 0.

    Parameters
    ----------
    threads : `int` or `None`
        Requested threads.

    Returns
    -------
    threads : `int`
        Threads to use.

    Raises
    ------
    ValueError
        If ``threads`` is negative.
    """
    if threads is None or threads == 0:
        return default_threads()
    if int(threads) < 0:
        raise ValueError(f"threads must be 0 (all CPUs) or positive, got {threads}.")
    return int(threads)


def _session(model: bytes) -> Any:
    """Return a single-threaded ONNX Runtime CPU session for ``model`` (see
    `_run_chunks` for how several cores are used).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No thread pool to spin: on a machine shared with other processes
    # (Prompt Processing runs one per core) spinning threads steal the cores
    # the work needs (doc/performance.rst).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _chunk_bounds(n: int, chunk: int, threads: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` pieces of ``range(n)``: at most ``chunk`` long, and
    short enough that ``threads`` threads all get one (unless that would make
    them shorter than `MIN_PIECE`); every piece but the last is a multiple
    of ``align``.
    """
    size = max(1, min(chunk, max(-(-n // max(1, threads)), MIN_PIECE)))
    if align > 1:
        size = max(align, size // align * align)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


_POOL: dict[str, Any] = {}
"""This process's worker threads for `_run_chunks` (made on first use, grown
on demand, dropped in a forked child, whose copy would have no threads)."""
_POOL_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        pool = _POOL.get("pool")
        if pool is None or _POOL.get("size", 0) < threads:
            if pool is not None:
                pool.shutdown(wait=False)  # its running work finishes; new work goes to the new pool
            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rbnodia-onnx")
            _POOL.update(pool=pool, size=threads)
        return pool


def _forget_pool_in_child() -> None:
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()  # the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _run_chunks(work: Callable[[int, int], None], bounds: list[tuple[int, int]], threads: int) -> None:
    """Call ``work(start, stop)`` for every piece, on up to ``threads``
    threads at once (ONNX Runtime releases the GIL while it runs): the
    calling thread and ``threads - 1`` pool threads take the pieces in turn.
    """
    if threads <= 1 or len(bounds) <= 1:
        for start, stop in bounds:
            work(start, stop)
        return
    pieces = iter(bounds)
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                piece = next(pieces, None)
            if piece is None:
                return
            work(*piece)

    helpers = [_pool(threads - 1).submit(drain) for _ in range(min(threads, len(bounds)) - 1)]
    try:
        drain()
    finally:  # never return (or raise) while a helper still writes into the caller's arrays
        for helper in helpers:
            helper.exception()
    for helper in helpers:
        helper.result()


class GraphSessions:
    """ONNX Runtime sessions of one `GraphVariants`: the plain graph, plus
    the folded one for the part of a batch that is a multiple of ``fold``.

    Parameters
    ----------
    variants : `GraphVariants`
        The serialised graphs.
    session : callable, optional
        ``session(model_bytes)`` -> session; a single-threaded CPU session
        by default (another factory only for ``benchmarks/bench_threading.py``).
    """

    def __init__(self, variants: GraphVariants, session: Callable[[bytes], Any] | None = None) -> None:
        session = session or _session
        self.plain = session(variants.plain)
        self.folded = session(variants.folded) if variants.folded is not None else None
        self.fold = variants.fold

    def output_width(self, index: int = 0) -> int:
        """Return the size of output ``index`` after the batch axis (its last axis).

        Parameters
        ----------
        index : `int`, optional
            Output index.

        Returns
        -------
        width : `int`
            The size of its last axis.
        """
        return int(self.plain.get_outputs()[index].shape[-1])

    def run(self, names: list[str], inputs: np.ndarray) -> list[np.ndarray]:
        """Compute the outputs ``names`` for ``inputs``, stamps in order.

        Parameters
        ----------
        names : `list` [`str`]
            Output names.
        inputs : `numpy.ndarray`
            Network inputs (float32).

        Returns
        -------
        outputs : `list` [`numpy.ndarray`]
            One array per name.
        """
        n = len(inputs)
        bulk = (n // self.fold) * self.fold if self.fold else 0
        if bulk == n:
            return self.folded.run(names, {"inputs": inputs})
        if bulk == 0:
            return self.plain.run(names, {"inputs": inputs})
        head = self.folded.run(names, {"inputs": inputs[:bulk]})
        tail = self.plain.run(names, {"inputs": inputs[bulk:]})
        # (the two graphs may lay a stamp's gradient out in different shapes, the values in the same order)
        return [np.concatenate([h, t.reshape((len(t),) + h.shape[1:])]) for h, t in zip(head, tail)]


class _ChunkedRunner:
    """What `OnnxPredictor` and `OnnxSaliency` share: a batch cut into
    chunks that run on ``threads`` threads at once.
    """

    _absolute: frozenset[str] = frozenset()  # outputs copied as their absolute values

    def __init__(self, threads: int | None, chunk: int) -> None:
        self.threads = resolve_threads(threads)
        self.chunk = max(1, int(chunk))

    def _run_all(
        self, sessions: GraphSessions, inputs: np.ndarray, outputs: dict[str, np.ndarray], threads: int | None
    ) -> None:
        """Fill each ``outputs[name]`` with output ``name`` of ``sessions``
        for ``inputs`` (its absolute value for the names in ``_absolute``),
        reshaped to the array's shape (the values in the same order), on
        ``threads`` threads (the runner's own if `None`).
        """
        names = list(outputs)
        threads = self.threads if threads is None else resolve_threads(threads)

        def work(start: int, stop: int) -> None:
            for name, value in zip(names, sessions.run(names, inputs[start:stop])):
                target = outputs[name][start:stop]
                value = value.reshape(target.shape)
                if name in self._absolute:
                    np.abs(value, out=target)  # as cheap as the plain copy
                else:
                    target[...] = value

        _run_chunks(work, _chunk_bounds(len(inputs), self.chunk, threads, sessions.fold or 1), threads)


class OnnxPredictor(_ChunkedRunner):
    """Runs a network's forward graph with ONNX Runtime.

    Parameters
    ----------
    forward : `GraphVariants`
        The forward graph (output ``outputs``, the softmax).
    threads : `int`, optional
        Chunks run at once by default, one ONNX Runtime thread each;
        `None` or 0: `default_threads`.
    chunk : `int`
        Most stamps per ONNX Runtime call.

    Raises
    ------
    ImportError
        If ``onnxruntime`` is missing.
    onnxruntime.capi.onnxruntime_pybind11_state.Fail
        If a graph is not a valid ONNX model (and similar ONNX Runtime
        errors).
    """

    def __init__(self, forward: GraphVariants, *, threads: int | None = None, chunk: int = CHUNK) -> None:
        super().__init__(threads, chunk)
        self.sessions = GraphSessions(forward)
        self.fold = self.sessions.fold
        self.classes = self.sessions.output_width()
        _LOG.debug("ONNX Runtime predictor: %d threads, fold %d.", self.threads, self.fold)

    def __call__(self, inputs: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """Softmax outputs ``(n, classes)`` float32 of float32 ``inputs``,
        on ``threads`` threads (the predictor's default if `None`).
        """
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        outputs = {"outputs": np.empty((len(inputs), self.classes), dtype=np.float32)}
        self._run_all(self.sessions, inputs, outputs, threads)
        return outputs["outputs"]


class OnnxSaliency(_ChunkedRunner):
    """Softmax outputs and vanilla gradient saliency maps from one ONNX
    Runtime graph (`rbnodia.nn.onnx.translate.keras_to_onnx` with
    ``saliency=True``).

    Parameters
    ----------
    maps : `GraphVariants`
        The saliency graph (outputs ``outputs`` and ``gradient``).
    rows : `GraphVariants`, optional
        The row-sum graph (outputs ``outputs`` and ``saliency_row_sums``),
        for ``sum_rows=True``; its sessions are made on first use.
    threads, chunk
        As for `OnnxPredictor`.
    """

    _absolute = frozenset({"gradient"})

    def __init__(
        self, maps: GraphVariants, rows: GraphVariants | None = None, *, threads: int | None = None,
        chunk: int = CHUNK,
    ) -> None:
        super().__init__(threads, chunk)
        self.sessions = GraphSessions(maps)
        self.fold = self.sessions.fold
        self.classes = self.sessions.output_width()
        self._rows = rows
        self._row_sessions: GraphSessions | None = None
        self._row_lock = threading.Lock()

    def _row_graphs(self) -> GraphSessions:
        with self._row_lock:
            if self._row_sessions is None:
                if self._rows is None:
                    raise ValueError("This saliency runner has no row-sum graph (sum_rows=True).")
                self._row_sessions = GraphSessions(self._rows)
            return self._row_sessions

    def __call__(
        self,
        inputs: np.ndarray,
        *,
        sum_rows: bool = False,
        maps: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Compute ``(maps, probabilities)`` for float32 ``inputs``.

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n, h, w, c)`` network inputs.
        sum_rows : `bool`
            Return each map summed over its rows, ``(n, 1, w, c)``, computed
            by the row-sum graph: enough for the segment importances,
            without copying the full maps out.
        maps, probabilities : `numpy.ndarray`, optional
            Float32 arrays to write the results into (a caller's slices of
            larger arrays, so the chunks are not copied twice); new arrays
            if `None`.
        threads : `int`, optional
            Chunks run at once; the runner's default if `None`.

        Returns
        -------
        maps : `numpy.ndarray`
            ``|d P_top / d inputs|`` shaped like ``inputs``, or its row sums.
        probabilities : `numpy.ndarray`
            The ``(n, classes)`` softmax outputs.
        """
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        n, height, width, channels = inputs.shape
        shape = (n, 1, width, channels) if sum_rows else inputs.shape
        if maps is None:
            maps = np.empty(shape, dtype=np.float32)
        if probabilities is None:
            probabilities = np.empty((n, self.classes), dtype=np.float32)
        if maps.shape != shape or probabilities.shape != (n, self.classes):
            raise ValueError(f"Output arrays of shapes {maps.shape} and {probabilities.shape} do not fit "
                             f"{shape} and {(n, self.classes)}.")
        if not sum_rows:
            self._run_all(self.sessions, inputs, {"outputs": probabilities, "gradient": maps}, threads)
        else:
            self._run_all(self._row_graphs(), inputs, {"outputs": probabilities, "saliency_row_sums": maps},
                          threads)
        return maps, probabilities
