# amaranth: UnusedElaboratable=no
"""The ``kv260`` configuration (Kria K26, Zynq UltraScale+) bit-exact end to end, as ``pynq-z2`` is.

The board's datapath (T = 16, 64 lanes, two words per beat, one LIF lane, activation banks
packed four words to a row) with memories shrunk to what Amaranth's simulator runs in about a
minute, on the small T = 16 model with divided attention that ``tests/test_accel_core.py`` runs
on the ``pynq-z2`` datapath: every layer equals the integer model, every command's cycle count
the cycle model, and no command writes outside its output regions. The full-size figures (peak
rate, hw-gesture frames per second) come from the same cycle model
(``scripts/bench_accel.py --no-sim --gesture --config kv260``).
"""

from __future__ import annotations

import dataclasses

import pytest
from test_accel_core import assert_bit_exact_with_exact_cycles

from golden.workloads import firing_int_model
from protocol.config import ACCEL_CONFIGS, BOARD_PARTS
from protocol.perf import plan

from intmodel_factory import random_input, random_int_model

KV260 = ACCEL_CONFIGS["kv260"]


def test_kv260_is_sized_beyond_pynq_z2() -> None:
    z2 = ACCEL_CONFIGS["pynq-z2"]
    assert KV260.peak_synaptic_ops == 2048 == 2 * z2.peak_synaptic_ops
    assert KV260.amem_depth == 8 * z2.amem_depth and KV260.wmem_depth >= z2.wmem_depth
    assert KV260.clock_mhz == 200.0 and BOARD_PARTS["kv260"].startswith("xck26")
    # Two banks of 2^19 x 16 bits, four words to a 72-bit row: 32 URAM288 (4096 rows) each,
    # the K26's 64 in all (one word a row would need 256).
    rows = KV260.amem_depth // KV260.words_per_beat // KV260.amem_words_per_row
    assert KV260.amem_words_per_row * KV260.timesteps <= 72
    assert KV260.words_per_beat * -(-rows // 4096) == 64


def test_hw_gesture_on_kv260_cycle_model() -> None:
    """hw-gesture compiles for kv260 and runs faster than on pynq-z2 (cycles, and more at 200 MHz)."""
    gesture = firing_int_model("hw-gesture")
    on_kv260, _, _ = plan(gesture, KV260)
    on_z2, _, _ = plan(gesture, ACCEL_CONFIGS["pynq-z2"])
    assert on_kv260.cycles < on_z2.cycles
    assert on_kv260.segments == 1 < on_z2.segments  # the larger activation memory holds it resident
    assert on_kv260.fps > 2 * on_z2.fps


@pytest.mark.slow
def test_kv260_datapath_bit_exact_with_exact_cycles() -> None:
    # The packed activation banks (four words a row, as the preset) run the whole model.
    config = dataclasses.replace(
        KV260, name="kv260-small", amem_depth=8192, wmem_depth=256, amem_words_per_row=4
    )
    model = random_int_model(5, groupings=("temporal", "spatial"), timesteps=16, img=4, channels=(2, 4, 16))
    x = random_input(model, 1, 2)
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=200_000)
