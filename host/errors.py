"""Typed errors of the host driver: every failure names the stage, the register or the value.

The hierarchy lets a caller tell apart what it can fix (:class:`InputError`: wrong
shape, dtype or range of a batch; :class:`ProgramMismatchError`: an export or program
that does not fit the loaded hardware) from what went wrong on the device
(:class:`AcceleratorTimeout`, :class:`AcceleratorFault`, :class:`DMAError`) and from
a missing optional component (:class:`BackendUnavailable`).
"""

from __future__ import annotations

__all__ = [
    "HostError",
    "InputError",
    "ProgramMismatchError",
    "BackendUnavailable",
    "DeviceError",
    "AcceleratorTimeout",
    "DMATimeout",
    "DoneTimeout",
    "DMAError",
    "AcceleratorFault",
]


class HostError(RuntimeError):
    """Base class of every error the host driver raises."""


class InputError(HostError, ValueError):
    """A batch does not fit the loaded model: shape, dtype or value range (the message says which)."""


class ProgramMismatchError(HostError):
    """The program or export does not fit the hardware behind the backend (ID, version, config hash)."""


class BackendUnavailable(HostError):
    """A backend cannot start: ``pynq`` is not installed, no overlay, no simulator tool chain."""


class DeviceError(HostError):
    """Something went wrong on the device side of a run (the base of the errors below).

    Attributes
    ----------
    stage:
        The driver stage that noticed it (``"send"``, ``"receive"``, ``"run"``, ...).
    sample:
        Index of the sample in the batch, or ``None``.
    """

    def __init__(self, message: str, *, stage: str, sample: int | None = None) -> None:
        self.stage, self.sample = stage, sample
        where = f"sample {sample}, " if sample is not None else ""
        super().__init__(f"[{where}stage {stage}] {message}")


class AcceleratorTimeout(DeviceError, TimeoutError):
    """A wait did not finish within its time budget; the core was reset afterwards.

    Attributes
    ----------
    waited_s:
        Seconds waited (simulated seconds on the simulation backend).
    status:
        Decoded status registers at the moment of the timeout.
    """

    def __init__(
        self, message: str, *, stage: str, waited_s: float, status: dict[str, int], sample: int | None = None
    ) -> None:
        self.waited_s, self.status = waited_s, dict(status)
        shown = ", ".join(f"{k}={v:#x}" for k, v in self.status.items())
        super().__init__(f"{message} after {waited_s:.6g} s (status: {shown})", stage=stage, sample=sample)


class DMATimeout(AcceleratorTimeout):
    """An AXI DMA channel stayed busy: the stream was not consumed or no TLAST came back."""


class DoneTimeout(AcceleratorTimeout):
    """``STATUS.DONE`` never came after ``START``."""


class DMAError(DeviceError):
    """The AXI DMA reported an error (its status register), or a packet had the wrong length."""


class AcceleratorFault(DeviceError):
    """The core finished with error flags set; it has been soft-reset since.

    Attributes
    ----------
    flags:
        The ``ERROR`` register value (:class:`protocol.regmap.ErrorFlag` bits).
    detail:
        The ``DETAIL`` register value.
    command:
        Program index of the command that raised the first error (``ERROR_COMMAND``, which
        counts from the running segment's first command in a band-tiled program).
    command_name:
        What that command implements (a model op name), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        flags: int,
        detail: int,
        command: int,
        command_name: str = "",
        sample: int | None = None,
    ) -> None:
        self.flags, self.detail, self.command, self.command_name = flags, detail, command, command_name
        super().__init__(message, stage=stage, sample=sample)
