"""A batch split into contiguous shares, each run by its own driver and backend in its own process.

``python -m host.run --backend sim --jobs N`` simulates ``N`` shares of the samples at
once, one simulator per process, and merges the shares' results in sample order
(:meth:`host.driver.RunResult.concatenate`), so the bit-exactness check and the report
see one batch, as if a single driver had run it.

Each worker opens its backend with ``opener`` (a picklable callable, e.g. a
:func:`functools.partial` of :func:`host.backends.open_backend`) and runs the one
``program`` with the one ``timeout_s`` it is given: every share runs the same program,
configuration and clock. The workers are *spawned*, not forked: the parent has usually
loaded the simulator library already (to build it once and to check the hardware before
the shares start), and a fork would copy its simulator's state into every worker.

A worker reports each finished sample, then its result or its error, through its own
pipe. The first error (an exception in the worker, or a worker that died) stops the
other workers and raises :class:`ShareError` naming the share, the exception's type and
message; a worker that exits without a word closes its pipe, so the parent never waits
on a dead worker.

Imports the standard library and numpy only (the board runtime stages this package).
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from .backends.base import Backend
from .driver import Driver, Progress, RunResult
from .errors import HostError

__all__ = ["ShareError", "Share", "split", "run_shares"]

#: Seconds a stopped worker gets to exit before it is killed.
_STOP_S = 5.0


class ShareError(HostError):
    """A worker of :func:`run_shares` failed; the message names its share and its error.

    Attributes
    ----------
    share:
        The failed share.
    error_type:
        Name of the exception's type in the worker (``""`` when the worker died without one).
    details:
        The worker's traceback, or its exit status.
    """

    def __init__(self, message: str, *, share: Share, error_type: str = "", details: str = "") -> None:
        super().__init__(message)
        self.share, self.error_type, self.details = share, error_type, details


@dataclass(frozen=True)
class Share:
    """Samples ``start`` to ``stop - 1`` of the batch, run by worker ``index``."""

    index: int
    start: int
    stop: int

    def __str__(self) -> str:
        return f"share {self.index} (samples {self.start}-{self.stop - 1})"


def split(samples: int, jobs: int) -> list[Share]:
    """``jobs`` contiguous shares of ``samples`` whose sizes differ by at most one (none empty)."""
    if samples < 1 or jobs < 1:
        raise ValueError(f"cannot split {samples} samples into {jobs} shares")
    bounds = np.linspace(0, samples, min(jobs, samples) + 1).round().astype(int)
    return [Share(i, int(a), int(b)) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]


def _work(
    pipe: Connection,
    opener: Callable[[], Backend],
    program: Any,
    x: np.ndarray,
    timeout_s: float,
    profile: bool,
) -> None:
    """A worker: run ``x`` on a backend of its own; send each sample done, then the result or the error."""
    try:
        with opener() as backend:
            driver = Driver(backend, program, timeout_s=timeout_s)
            try:
                result = driver.run(x, profile=profile, progress=lambda i: pipe.send(("sample", i)))
            finally:
                driver.close()
        pipe.send(("done", result))
    except BaseException as exc:  # every failure, KeyboardInterrupt included, must reach the parent
        sample = getattr(exc, "sample", None)
        pipe.send(("error", type(exc).__name__, str(exc), traceback.format_exc(), sample))
    finally:
        pipe.close()


def run_shares(
    opener: Callable[[], Backend],
    program: Any,
    x: np.ndarray,
    *,
    jobs: int,
    timeout_s: float,
    profile: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Run the batch ``x`` as ``jobs`` contiguous shares in as many spawned processes.

    Parameters
    ----------
    opener:
        Opens a worker's backend; picklable (a module-level function or a partial of one).
    program:
        The compiled program every worker runs.
    x:
        The batch.
    jobs:
        Worker processes (at most one per sample).
    timeout_s:
        The driver's wait budget in every worker.
    profile:
        Read the per-command cycle counters (see :meth:`host.driver.Driver.run`).
    progress:
        Called with a sample's batch index once it is done: in order within a share,
        the shares interleaved.

    Raises
    ------
    ShareError
        A worker raised (its share, the exception's type and message) or died.
    """
    x = np.asarray(x)
    shares = split(len(x), jobs)
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    running: dict[Connection, tuple[Share, Any]] = {}
    results: dict[int, RunResult] = {}
    try:
        for share in shares:
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_work,
                args=(writer, opener, program, x[share.start : share.stop], timeout_s, profile),
                name=f"host.parallel {share}",
                daemon=True,
            )
            process.start()
            writer.close()  # the worker holds the only writer: its exit closes the pipe
            processes.append(process)
            running[reader] = (share, process)
        while running:
            for reader in wait(list(running)):
                share, process = running[reader]
                try:
                    message = reader.recv()
                except EOFError:
                    process.join(_STOP_S)
                    raise ShareError(
                        f"the worker of {share} exited (status {process.exitcode}) before it finished",
                        share=share,
                        details=f"exit status {process.exitcode}",
                    ) from None
                if message[0] == "sample":
                    if progress is not None:
                        progress(share.start + message[1])
                elif message[0] == "done":
                    results[share.index] = message[1]
                    del running[reader]
                    reader.close()
                else:
                    _, name, text, details, sample = message
                    where = "" if sample is None else f" at sample {share.start + sample}"
                    raise ShareError(
                        f"{share} failed{where}: {name}: {text}",
                        share=share,
                        error_type=name,
                        details=details,
                    )
    finally:
        _stop(processes, running)
    return RunResult.concatenate([results[share.index] for share in shares])


def _stop(processes: list[Any], running: dict[Connection, tuple[Share, Any]]) -> None:
    """Join the workers; end those still running (after an error); close the open pipes."""
    for reader, (_, process) in running.items():
        if process.is_alive():
            process.terminate()
        reader.close()
    for process in processes:
        process.join(_STOP_S)
        if process.is_alive():
            process.kill()
            process.join()
