# amaranth: UnusedElaboratable=no
"""Synapse PE array in Amaranth's simulator: RTL currents == numerics.synaptic_current(linear_accumulate)."""

from __future__ import annotations

import numpy as np
import pytest

from contract import numerics
from hw.synapse_pe import SynapseArray, dot_product_beats, pack_input, reference, unpack_output
from protocol.params import PE_CONFIGS, SynapseArrayParams
from sim.stimulus import DotProduct, synapse_dot, synapse_edge_vectors, synapse_payloads
from sim.testbench import StreamRun, simulate_streams


def dot(values: np.ndarray, weights: np.ndarray, bias: np.ndarray, planes: int | None = None) -> DotProduct:
    """A dot product with, by default, the fewest bit planes that hold ``values``."""
    values = np.asarray(values, dtype=np.int64)
    return DotProduct(
        values, np.asarray(weights), np.asarray(bias), planes or max(1, int(values.max()).bit_length())
    )


def run_synapse(
    params: SynapseArrayParams, dots: list[DotProduct], *, shuffle: bool = True, **kwargs: object
) -> StreamRun:
    """Stream ``dots``; the payload noise (other beats' biases, beat order) is seeded by ``seed``."""
    rng = np.random.default_rng(int(kwargs.get("seed", 0)))
    beats = [beat for d in dots for beat in synapse_payloads(params, d, rng, shuffle=shuffle)]
    return simulate_streams(
        SynapseArray(params),
        inputs={"inp": beats},
        outputs={"out": len(dots)},
        observe=("overflow",),
        **kwargs,
    )


def check_synapse(params: SynapseArrayParams, dots: list[DotProduct], **kwargs: object) -> StreamRun:
    run = run_synapse(params, dots, **kwargs)
    for index, (problem, word) in enumerate(zip(dots, run.fields("out"), strict=True)):
        got = np.array(word["current"], dtype=np.int64).T  # [L][T] -> [T, L]
        want = reference(params, problem.values, problem.weights, problem.bias)
        assert np.array_equal(got, want), f"dot product {index}: rtl\n{got}\n!= reference\n{want}"
    assert run.final["overflow"] == 0
    return run


@pytest.mark.parametrize("name", sorted(PE_CONFIGS["synapse"]))
def test_random_spike_vectors_all_configs(name: str) -> None:
    params = PE_CONFIGS["synapse"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    check_synapse(params, [synapse_dot(params, rng, planes=1, max_fan_in=12) for _ in range(12)], seed=2)


@pytest.mark.parametrize("name", ["synapse_l8_t4", "synapse_l4_t4_b1_m12", "synapse_l1_t16"])
def test_edge_cases(name: str) -> None:
    params = PE_CONFIGS["synapse"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    check_synapse(params, synapse_edge_vectors(params, rng, fan_in_cap=40))


@pytest.mark.parametrize("input_bits", [2, 5, 8])
def test_multibit_inputs_as_bit_planes(input_bits: int) -> None:
    params = SynapseArrayParams(lanes=3, timesteps=4, input_bits=input_bits, acc_bits=24)
    rng = np.random.default_rng(input_bits)
    input_max = (1 << input_bits) - 1
    problems = [synapse_dot(params, rng, planes=input_bits, max_fan_in=6) for _ in range(8)]
    problems.append(
        dot(np.full((3, 4), input_max), np.full((3, 3), -params.weight_max), np.zeros(3, dtype=np.int64))
    )
    problems.append(
        dot(np.full((2, 4), 1), np.full((3, 2), 5), np.zeros(3, dtype=np.int64), planes=input_bits)
    )  # upper planes all zero
    check_synapse(params, problems)


def test_backpressure_and_idle_cycles() -> None:
    params = SynapseArrayParams(lanes=4, timesteps=3, input_bits=4, acc_bits=20, membrane_bits=14)
    rng = np.random.default_rng(5)
    for seed, (valid_prob, ready_prob) in enumerate([(0.5, 1.0), (1.0, 0.2), (0.7, 0.5)]):
        problems = [synapse_dot(params, rng, planes=4, max_fan_in=3) for _ in range(14)]
        check_synapse(params, problems, seed=seed, valid_prob=valid_prob, ready_prob=ready_prob)


@pytest.mark.parametrize("name", ["synapse_l8_t16", "synapse_l8_t4"])
def test_lxt_synaptic_ops_per_cycle(name: str) -> None:
    """One beat (L x T spike x weight accumulations) per cycle; result ``latency`` after each last beat."""
    params = PE_CONFIGS["synapse"][name]
    inputs, count = 7, 5
    rng = np.random.default_rng(9)
    problems = [
        dot(p.values[:1].repeat(inputs, 0), p.weights[:, :1].repeat(inputs, 1), p.bias, planes=1)
        for p in (synapse_dot(params, rng, planes=1, max_fan_in=1) for _ in range(count))
    ]
    run = check_synapse(params, problems, shuffle=False)
    assert run["inp"].cycles == list(range(inputs * count))
    assert run["out"].cycles == [(n + 1) * inputs - 1 + params.latency for n in range(count)]
    assert run["out"].cycles[-1] + 1 == params.cycles(inputs, outputs=count)
    ops = inputs * count * params.lanes * params.timesteps
    assert ops / (run["inp"].cycles[-1] + 1) == params.synaptic_ops_per_cycle


def test_overflow_flag() -> None:
    params = SynapseArrayParams(lanes=1, timesteps=2, input_bits=1, acc_bits=9, membrane_bits=12)
    assert params.max_fan_in() == 2
    values = np.ones((3, 2), dtype=np.int64)
    weights = np.full((1, 3), 127)
    run = run_synapse(params, [dot(values, weights, np.zeros(1, dtype=np.int64))])
    assert run.final["overflow"] == 1
    check_synapse(params, [dot(values[:2], weights[:, :2], np.zeros(1, dtype=np.int64))])


def test_overflow_on_early_beats_stays_flagged() -> None:
    """Lane 0 overflows and lane 1 underflows on early beats, the later beats bring both sums
    back in range (the wrapped results are exact again) and a clean dot product follows:
    the flag stays raised, so it cannot reflect only the last beat or the last product."""
    params = SynapseArrayParams(lanes=2, timesteps=2, input_bits=1, acc_bits=9, membrane_bits=12)
    up, down = [127] * 4, [-127] * 4
    weights = np.array([up + down + [1, 1], down + up + [-1, -1]])
    lo, hi = numerics.signed_range(params.acc_bits)
    partial = np.cumsum(weights, axis=1)  # one beat per input
    assert ((partial < lo) | (partial > hi)).any(axis=1).all()
    assert ((partial[:, -2:] >= lo) & (partial[:, -2:] <= hi)).all()
    ones, bias = np.ones((weights.shape[1], 2), dtype=np.int64), np.array([3, -3])
    problems = [dot(ones, weights, bias), dot(ones[:2], weights[:, -2:], bias)]
    run = run_synapse(params, problems, shuffle=False)
    for problem, word in zip(problems, run.fields("out"), strict=True):
        got = np.array(word["current"], dtype=np.int64).T
        assert np.array_equal(got, reference(params, problem.values, problem.weights, problem.bias))
    assert run.final["overflow"] == 1


def test_pack_layout_and_errors() -> None:
    params = SynapseArrayParams(
        lanes=2, timesteps=3, weight_bits=8, input_bits=4, acc_bits=16, membrane_bits=10
    )
    word = pack_input(params, [1, 0, 1], [-1, 5], [7, -2], plane=3, last=True)
    assert word & 0b111 == 0b101  # spikes
    assert (word >> 3) & 0b11 == 3  # plane (plane_bits = 2)
    assert (word >> 5) & 0xFF == 0xFF  # weight[0] = -1
    assert (word >> 13) & 0xFF == 5
    assert (word >> 21) & 0x3FF == 7  # bias[0] (bias_width = membrane_bits)
    assert word >> (21 + 2 * 10) == 1  # last on top
    with pytest.raises(ValueError, match="spikes must be 3 values"):
        pack_input(params, [2, 0, 0], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="weights must lie in the signed 8-bit range"):
        pack_input(params, [1, 0, 0], [128, 0], [0, 0])
    with pytest.raises(ValueError, match="plane must be an integer in"):
        pack_input(params, [1, 0, 0], [0, 0], [0, 0], plane=4)
    with pytest.raises(ValueError, match="values must lie in"):
        dot_product_beats(params, np.full((1, 3), 16), np.zeros((2, 1)), np.zeros(2), planes=4)
    with pytest.raises(ValueError, match="weights must have shape"):
        dot_product_beats(params, np.ones((2, 3)), np.zeros((2, 1)), np.zeros(2))
    current = np.arange(6).reshape(3, 2) - 3
    packed = int(sum((int(c) & 0x3FF) << ((lane * 3 + t) * 10) for (t, lane), c in np.ndenumerate(current)))
    assert np.array_equal(unpack_output(params, packed), current)


def test_params_validation_and_cycles() -> None:
    with pytest.raises(ValueError, match=r"SynapseArrayParams.acc_bits must be an integer in \[16, 64\]"):
        SynapseArrayParams(weight_bits=8, input_bits=8, acc_bits=12)
    with pytest.raises(TypeError, match="SynapseArrayParams.lanes must be an integer"):
        SynapseArrayParams(lanes="8")
    with pytest.raises(TypeError, match="SynapseArray parameters must be a SynapseArrayParams"):
        SynapseArray(PE_CONFIGS["lif"]["lif_l1_t1"])
    params = SynapseArrayParams(lanes=8, timesteps=4, input_bits=8, acc_bits=24)
    assert params.plane_bits == 3 and params.bias_width == params.membrane_bits
    assert params.max_fan_in(255) == ((1 << 23) - 1) // (127 * 255)
    assert params.cycles(64, planes=8, outputs=2) == 2 * 64 * 8 + 1
    assert SynapseArrayParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="cannot be built from parameters of kind 'lif'"):
        SynapseArrayParams.from_dict({"kind": "lif"})
