# amaranth: UnusedElaboratable=no
"""The CONV command's max-pool of currents before the LIF (``conv_maxpool``) in Amaranth's simulator.

Each model is one pooled conv, the token view and a head; the core's run is compared at every
layer with the integer model, its per-command cycles with the cycle model, and its writes with
the commands' output regions (canary words everywhere else).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_accel_core import SIM, assert_bit_exact_with_exact_cycles

from contract.intmodel import IntModel, Op
from protocol.compiler import compile_model
from protocol.emulator import Emulator


def _pooled_model(
    seed: int,
    *,
    img: tuple[int, int],
    channels: tuple[int, int],
    conv: tuple[int, int, int],
    pool: tuple[int, int, int],
) -> tuple[IntModel, np.ndarray]:
    """One ``conv_maxpool`` (``conv`` = kernel, stride, padding; ``pool`` likewise) -> tokens -> head.

    Output channel 0 has zero weights, so its currents are its bias in every window (ties);
    the biases are mostly negative, so windows pool negative currents, and the padded taps
    must never win."""
    rng = np.random.default_rng(seed)
    c_in, c_out = channels
    k, stride, pad = conv
    w = rng.integers(-20, 21, (c_out, c_in, k, k))
    w[0] = 0
    bias = rng.integers(-2500, 100, c_out)
    bias[0] = -300
    theta = rng.integers(1, 200, c_out)
    params = dict(stride=stride, padding=pad, pool_kernel=pool[0], pool_stride=pool[1], pool_padding=pool[2])
    ops = (
        Op("stem", "conv_maxpool", ("input",), params, {"weight": w, "bias": bias, "threshold": theta}),
        Op("tokens", "tokens", ("stem",)),
        Op(
            "head",
            "head",
            ("tokens",),
            {},
            {"weight": rng.integers(-3, 4, (3, c_out)), "bias": np.zeros(3, np.int64)},
        ),
    )
    model = IntModel(SIM.numerics, (c_in, *img), 3, 3, ops)
    return model, rng.integers(0, 12, (1, 3, c_in, *img))


CASES = {
    # SpikingJelly's MaxPool(3, 2, 1) after a 3x3 conv, odd input sizes, two channel groups
    # with a partial LIF job.
    "3-2-1": dict(img=(5, 3), channels=(2, 20), conv=(3, 1, 1), pool=(3, 2, 1)),
    # 2 / 2 / 0 on an odd conv output (the last row and column are no window's).
    "2-2-0": dict(img=(5, 7), channels=(3, 12), conv=(3, 1, 1), pool=(2, 2, 0)),
    # A window of one conv position whose results take 4 beats (one 8-plane pixel word pair):
    # the LIF writer (16 cycles a position) is the bound.
    "writer-bound": dict(img=(5, 6), channels=(1, 8), conv=(1, 1, 0), pool=(1, 2, 0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_current_pool_bit_exact_with_exact_cycles(case: str) -> None:
    model, x = _pooled_model(7, **CASES[case])
    _, trace = model.run(x, trace=True)
    current, spikes = trace["stem.current"], trace["stem"]
    assert (current < 0).mean() > 0.15 and 0 < spikes.mean() < 1
    assert (current[:, :, 0] == current[0, 0, 0, 0, 0]).all()  # channel 0: every window ties
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=60_000)


def test_current_pool_on_the_emulator() -> None:
    for case in CASES.values():
        model, x = _pooled_model(3, **case)
        logits, trace = model.run(x, trace=True)
        program = compile_model(model, SIM, trace=True)
        got_logits, got = program.decode(Emulator(SIM).run(program.stream(x[0])))
        np.testing.assert_array_equal(got["stem"], trace["stem"])
        np.testing.assert_array_equal(got_logits, logits[0])
