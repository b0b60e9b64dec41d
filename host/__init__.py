"""Host driver of the Spikeformer accelerator: the same driver code on a PYNQ board and on the simulator.

* :mod:`host.packing` -- batches to stream words and back (pure numpy);
* :mod:`host.driver` -- :class:`~host.driver.Driver`, one timed method per stage;
* :mod:`host.backends` -- ``"pynq"`` (overlay, AXI DMA, MMIO) and ``"sim"`` (the top under
  Verilator with C++ AXI4-Lite and AXI DMA models, in-process), each imported on use;
* :mod:`host.verify` -- bit-exactness against the integer reference, first differing layer
  (the project's one checker of accelerator output);
* :mod:`host.parallel` -- a batch in contiguous shares, each run by its own driver and
  simulator in a spawned process (``host.run --jobs``), merged in sample order;
* :mod:`host.run` -- the command line (``python -m host.run``), the one way to run an export
  on the accelerator, simulated or on a board;
* :mod:`host.bitstream`, :mod:`host.deploy` -- the Vivado flow behind ``make bitstream`` and
  the copy-and-run behind ``make deploy``.

The board path (``host.run --backend pynq``) imports numpy, ``pynq`` and the pure packages
``contract``, ``protocol`` and ``host`` only.
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
