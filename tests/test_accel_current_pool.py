# amaranth: UnusedElaboratable=no
"""The CONV command's max-pool of currents before the LIF (``conv_maxpool``) in Amaranth's simulator.

Each model is one pooled conv, the token view and a head; the core's run is compared at every
layer with the integer model, its per-command cycles with the cycle model, and its writes with
the commands' output regions (canary words everywhere else).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_accel_core import SIM, assert_bit_exact_with_exact_cycles

from contract.intmodel import IntModel, Op
from protocol.compiler import compile_model
from protocol.descriptors import Opcode
from protocol.emulator import Emulator
from protocol.perf import estimate
from protocol.segments import absorb, host_tensors, run_program, segment_stream
from sim.accel.testbench import run_programs


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


#: Pooled convs whose input does not fit the activation memory (words): band tiled.
BANDED = {
    # SpikingJelly's stem stage on a taller image.
    "3-2-1": (700, dict(img=(17, 6), channels=(2, 20), conv=(3, 1, 1), pool=(3, 2, 1))),
    # A strided conv under a pool that tiles its rows.
    "stride-2": (700, dict(img=(20, 5), channels=(2, 12), conv=(3, 2, 1), pool=(2, 2, 0))),
    # Pool stride 1 below its padding 2: the second band starts inside the top padding too.
    "5-1-2": (500, dict(img=(14, 4), channels=(2, 8), conv=(3, 1, 1), pool=(5, 1, 2))),
    # Conv padding 2 (the rows below a bottom band pad by pad_left) and a pool that skips rows.
    "pad-2": (700, dict(img=(15, 5), channels=(2, 8), conv=(5, 1, 2), pool=(2, 3, 0))),
}


@pytest.mark.parametrize("case", list(BANDED))
def test_band_tiled_current_pool_on_the_emulator(case: str) -> None:
    depth, kw = BANDED[case]
    config = dataclasses.replace(SIM, amem_depth=depth)
    model, x = _pooled_model(11, **kw)
    logits, trace = model.run(x, trace=True)
    assert 0 < trace["stem"].mean() < 1
    params = model.op("stem").params
    for traced in (True, False):
        program = compile_model(model, config, trace=traced)
        (stage,) = program.stages
        assert stage.ops == ("stem",) and stage.bands > 2
        convs = [program.commands[i].descriptor for i in stage.commands]
        convs = [d for d in convs if d.opcode == Opcode.CONV]
        assert len(convs) == stage.bands
        # A band's pool starts in the pool's top padding only as far as its first row reaches.
        firsts = np.cumsum([0] + [d.out_h for d in convs])
        assert firsts[-1] == model.shapes["stem"][2]
        expected = [max(0, params["pool_padding"] - q * params["pool_stride"]) for q in firsts[:-1]]
        assert [d.pool_pad_top for d in convs] == expected
        assert convs[0].pad_top == params["padding"] and convs[-1].pad_top == 0
        emulator = Emulator(config)
        for i in range(len(x)):
            got_logits, got = program.decode(run_program(program, x[i], emulator.run))
            np.testing.assert_array_equal(got_logits, logits[i])
            if traced:
                np.testing.assert_array_equal(got["stem"], trace["stem"][:, i : i + 1])


#: Smaller band-tiled cases for the simulated core (one channel group, a few thousand cycles).
BANDED_ON_CORE = {
    "3-2-1": (400, dict(BANDED["3-2-1"][1], img=(9, 4), channels=(2, 8))),
    "stride-2": (700, dict(BANDED["stride-2"][1], channels=(2, 8))),
    "pad-2": (500, dict(BANDED["pad-2"][1], img=(12, 4))),
}


@pytest.mark.parametrize("case", list(BANDED_ON_CORE))
def test_band_tiled_current_pool_on_the_core(case: str) -> None:
    """Each segment on the Amaranth-simulated core (one elaboration, the activation memory kept
    between segments as on the board) fed what the host would feed it: its output words equal
    the emulator's, the decoded layer and logits the integer model's, and every command's
    cycles the cycle model's."""
    depth, kw = BANDED_ON_CORE[case]
    config = dataclasses.replace(SIM, amem_depth=depth)
    model, x = _pooled_model(11, **kw)
    logits, trace = model.run(x[:1], trace=True)
    program = compile_model(model, config, trace=True)
    assert program.stages[0].bands > 2
    tensors, emulator, streams, expected = host_tensors(program, x[0]), Emulator(config), [], []
    for segment in range(len(program.segments())):
        streams.append(segment_stream(program, segment, tensors))
        expected.append(emulator.run(streams[-1]))
        absorb(program, segment, expected[-1], tensors)
    runs = run_programs(config, streams, max_cycles=60_000)
    predicted = [e.cycles for e in estimate(program)]
    for (commands, _), run, words in zip(program.segments(), runs, expected, strict=True):
        assert run.error == 0
        np.testing.assert_array_equal(run.words, words)
        assert run.profile == [predicted[i] for i in commands][: config.profile_depth]
    got_logits, got = program.decode(np.concatenate([run.words for run in runs]))
    np.testing.assert_array_equal(got["stem"], trace["stem"])
    np.testing.assert_array_equal(got_logits, logits[0])
