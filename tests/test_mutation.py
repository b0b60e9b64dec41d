"""The cocotb LIF testbench catches a deliberately injected RTL bug.

The LIF array's leak term ``(x - v) >> k`` comes from :func:`hw.lif_pe._leak`. Replacing
it with an off-by-one shift ``(x - v) >> (k + 1)`` and regenerating the Verilog must
make the Verilator/cocotb regression fail, while the unmutated generator passes the
same regression with the same seed. Both builds live in their own directories
(``build/sim/mutation/{clean,mutant}``) so they never race the regular sweep.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from amaranth.hdl import Value

import hw.lif_pe as lif_pe
from protocol.params import PE_CONFIGS
from sim import flow
from sim.runner import SimulationError

ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"
CONFIG = "lif_l1_t4"
#: A short regression is plenty: an off-by-one leak changes most spike trains.
VECTORS = 300


def _off_by_one_leak(diff: Value, shift: int) -> Value:
    return diff >> (shift + 1)


@pytest.mark.slow
@pytest.mark.sim
def test_leak_mutation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    params = PE_CONFIGS["lif"][CONFIG]
    seed = int(os.environ.get("COCOTB_RANDOM_SEED") or 20240611)
    common = dict(vectors=VECTORS, seed=seed, testcase="random_vectors", objcache=ROOT / ".objcache")

    clean = flow.simulate(CONFIG, params, root=ROOT / "mutation" / "clean", **common)
    assert clean.result.tests == 1 and not clean.result.failed

    monkeypatch.setattr(lif_pe, "_leak", _off_by_one_leak)
    mutant_root = ROOT / "mutation" / "mutant"
    with pytest.raises(SimulationError, match=r"random_vectors.*COCOTB_RANDOM_SEED"):
        flow.simulate(CONFIG, params, root=mutant_root, **common)

    # The failure must come from the mutated hardware, not from a broken build or bench.
    clean_verilog = (ROOT / "mutation" / "clean" / CONFIG / f"{CONFIG}.v").read_text()
    mutant_verilog = (mutant_root / CONFIG / f"{CONFIG}.v").read_text()
    assert clean_verilog != mutant_verilog, "the monkeypatched _leak did not change the generated Verilog"
