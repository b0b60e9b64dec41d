# amaranth: UnusedElaboratable=no
"""Zero-word skipping in CONV (``AcceleratorConfig.zero_skip``, preset ``sim-zero-skip``).

The schedule's arithmetic (:mod:`protocol.zero_skip`) against the pick-by-pick procedure it
summarises, the reciprocal division against ``//``, and the Amaranth-simulated core on
adversarial sparsity: every layer bit-exact with the integer model, every command's cycles
those the cycle model predicts for the data, and a dot product's cycles following its
non-zero words.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_accel_core import assert_bit_exact_with_exact_cycles

from contract.numerics import NumericsConfig
from protocol.compiler import compile_model
from protocol.config import ACCEL_CONFIGS, ConfigError
from protocol.descriptors import Opcode
from protocol.emulator import Emulator
from protocol.perf import estimate
from protocol.zero_skip import OCCUPANCY_ROW, reciprocal, scan_beats, tap_divider

from intmodel_factory import random_input, random_int_model

SKIP = ACCEL_CONFIGS["sim-zero-skip"]
DENSE = ACCEL_CONFIGS["sim"]


# ---------------------------------------------------------------------------- the schedule
def _picked_beats(start: int, words: int, occupied: np.ndarray) -> int:
    """Beats of one tap, pick by pick: per occupancy row, the lowest even and the lowest odd
    non-zero word inside the tap each beat, one (empty) beat for an empty row."""
    beats = 0
    for row in range(start // OCCUPANCY_ROW, (start + words - 1) // OCCUPANCY_ROW + 1):
        inside = [
            a
            for a in range(row * OCCUPANCY_ROW, (row + 1) * OCCUPANCY_ROW)
            if start <= a < start + words and occupied[a]
        ]
        even, odd = [a for a in inside if a % 2 == 0], [a for a in inside if a % 2 == 1]
        row_beats = 0
        while even or odd or row_beats == 0:
            even, odd = even[1:], odd[1:]
            row_beats += 1
        beats += row_beats
    return beats


def test_scan_beats_counts_the_picks() -> None:
    rng = np.random.default_rng(0)
    occupied = rng.random(700) < 0.3
    occupied[300:400] = True  # a dense stretch
    occupied[500:600] = False  # an empty one
    starts = rng.integers(0, 560, 300)
    for words in (1, 2, 7, 31, 32, 33, 64, 100):
        got = scan_beats(starts, words, occupied)
        assert got.tolist() == [_picked_beats(int(s), words, occupied) for s in starts]


def test_reciprocal_division_is_exact() -> None:
    for cfg in (SKIP, ACCEL_CONFIGS["pynq-z2"]):
        planes = cfg.numerics.input_bits
        offset_bits, shift = tap_divider(cfg)
        assert 1 << offset_bits > cfg.wmem_depth * planes  # every tap offset C P at k = 1
        n = np.arange(1 << offset_bits, dtype=np.int64)
        for p in range(1, planes + 1):
            np.testing.assert_array_equal((n * reciprocal(p, shift)) >> shift, n // p)


def test_zero_skip_needs_two_words_per_beat() -> None:
    with pytest.raises(ConfigError, match="zero_skip needs words_per_beat = 2"):
        dataclasses.replace(SKIP, words_per_beat=1, serial_synapse=True)


# ---------------------------------------------------------------------------- the core
def _model():
    return random_int_model(3, groupings=("joint",), img=4, channels=(2, 4, 8), firing_attention=True)


def _sparse_input(case: str, model) -> np.ndarray:
    x = random_input(model, 1, 1, high=40)
    if case == "all-ones":  # every word non-zero: every bit plane of every pixel set
        return np.full_like(x, model.numerics.input_max)
    if case == "single-last-tap":  # one non-zero word: the bottom-right pixel's top plane
        only = np.zeros_like(x)
        only[0, :, -1, -1, -1] = 1 << (model.numerics.input_bits - 1)
        return only
    if case == "sparse-planes":  # 8-bit pixels below 4: planes 2..7 all zero
        return np.where(x > 20, x % 4, 0)
    if case == "even-bank":  # only plane 0 of channel 0: every non-zero word at an even address
        return (x > 10).astype(x.dtype) * np.array([1, 0])[None, None, :, None, None]
    return x


@pytest.mark.parametrize("case", ["random", "all-ones", "sparse-planes", "even-bank", "single-last-tap"])
def test_zero_skip_core_bit_exact(case: str) -> None:
    model = _model()
    x = _sparse_input(case, model)
    assert (x == 0).mean() > 0.3 or case in ("random", "all-ones")
    assert_bit_exact_with_exact_cycles(SKIP, model, x, max_cycles=60_000, attention_fires=case == "random")


def test_conv_cycles_follow_the_non_zero_words() -> None:
    """On the cycle model (checked against the core above): an all-zero input costs the
    first conv a set-up cycle and an empty beat per tap, a single word no more (it shares
    its row's one beat), an input without a zero word the all-occupied bound of the static
    estimate (below the dense engine's only by the padded taps it skips)."""
    model = _model()
    program = compile_model(model, SKIP)
    first = next(i for i, c in enumerate(program.commands) if c.opcode == Opcode.CONV)
    cycles = {}
    for case in ("zero", "single-last-tap", "all-ones"):
        x = np.zeros_like(random_input(model, 1, 1)) if case == "zero" else _sparse_input(case, model)
        emulator = Emulator(SKIP)
        emulator.run(program.stream(x[0]))
        cycles[case] = emulator.cycles[first]
    dense = Emulator(DENSE)
    dense.run(compile_model(model, DENSE).stream(_sparse_input("all-ones", model)[0]))
    assert cycles["zero"] == cycles["single-last-tap"]
    assert cycles["all-ones"] == estimate(program)[first].cycles
    assert cycles["zero"] < dense.cycles[first] / 2


def test_zero_skip_with_many_planes_and_wide_channels() -> None:
    """Three-plane inputs of two channels: a tap's words straddle occupancy rows and channels."""
    numerics = NumericsConfig(input_bits=3)
    config = dataclasses.replace(SKIP, numerics=numerics)
    model = random_int_model(
        4, groupings=("joint",), img=4, channels=(2, 4, 8), numerics=numerics, firing_attention=True
    )
    x = random_input(model, 1, 2, high=numerics.input_max)
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=60_000)
