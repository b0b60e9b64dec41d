"""The driver tests of tests/test_host_driver.py that take a ``flavour``, on the real pynq classes.

The same test functions (imported, not copied) run here with the ``"pynq"`` flavour of
:func:`host_fakes.make_backend`: a ``pynq.Device`` subclass holding the fake Zynq (DDR with
a CPU cache, the AXI DMA registers, the accelerator on the protocol emulator), pynq's own
``DefaultIP``, ``pynq.lib.dma.DMA`` and ``pynq.allocate``. Covered: bit-exact logits and
buffer bookkeeping, traces, a missing output packet (DMATimeout, reset, recovery), the
error flag (AcceleratorFault naming the command, cleared by soft reset; also one raised after
both DMA channels went idle) and output packets longer or shorter than the program says.
"""

from __future__ import annotations

import pytest

from test_host_driver import (  # noqa: F401 -- fixtures and tests collected in this module
    model,
    program,
    test_error_flag_is_reported_and_cleared_by_reset,
    test_fault_after_both_dma_channels_went_idle,
    test_logits_and_bookkeeping,
    test_missing_output_times_out_resets_and_recovers,
    test_packet_longer_than_the_program_says,
    test_packet_shorter_than_the_program_says,
    test_traces_match_the_integer_model,
    traced,
)


@pytest.fixture
def flavour() -> str:
    return "pynq"


def test_every_flavoured_driver_test_runs_here() -> None:
    # A test added to tests/test_host_driver.py with a ``flavour`` argument must be imported above.
    import inspect

    import test_host_driver

    flavoured = {
        name
        for name, function in vars(test_host_driver).items()
        if name.startswith("test_") and "flavour" in inspect.signature(function).parameters
    }
    here = {name for name in globals() if name.startswith("test_") and name in flavoured}
    assert flavoured and here == flavoured
