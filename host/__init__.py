"""Host driver of the Spikeformer accelerator: the same driver code on a PYNQ board and on the simulator.

* :mod:`host.packing` -- batches to stream words and back (pure numpy);
* :mod:`host.driver` -- :class:`~host.driver.Driver`, one timed method per stage;
* :mod:`host.backends` -- ``"pynq"`` (overlay, AXI DMA, MMIO) and ``"sim"`` (Verilator + cocotb);
* :mod:`host.verify` -- bit-exactness against the integer reference, first differing layer;
* :mod:`host.run` -- the command line (``python -m host.run``);
* :mod:`host.bitstream` -- the Vivado flow behind ``make bitstream``.
"""

from .driver import Driver, RunResult
from .errors import (
    AcceleratorFault,
    AcceleratorTimeout,
    BackendUnavailable,
    DMAError,
    DMATimeout,
    DoneTimeout,
    HostError,
    InputError,
    ProgramMismatchError,
)

__all__ = [
    "Driver",
    "RunResult",
    "HostError",
    "InputError",
    "ProgramMismatchError",
    "BackendUnavailable",
    "AcceleratorTimeout",
    "DMATimeout",
    "DoneTimeout",
    "DMAError",
    "AcceleratorFault",
]
