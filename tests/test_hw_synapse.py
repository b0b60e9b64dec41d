# amaranth: UnusedElaboratable=no
"""Synapse PE array in Amaranth's simulator: RTL currents == numerics.synaptic_current(linear_accumulate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from golden import numerics
from hw.params import PE_CONFIGS, SynapseArrayParams
from hw.synapse_pe import SynapseArray, dot_product_beats, pack_input, reference, unpack_output
from hw.testbench import StreamRun, simulate_streams


@dataclass
class DotProduct:
    """One output-lane group's dot product: ``values [I, T]``, ``weights [L, I]``, ``bias [L]``."""

    values: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    planes: int | None = None


def run_synapse(params: SynapseArrayParams, problems: list[DotProduct], **kwargs: object) -> StreamRun:
    beats = [beat for pr in problems
             for beat in dot_product_beats(params, pr.values, pr.weights, pr.bias, planes=pr.planes)]
    return simulate_streams(SynapseArray(params), inputs={"inp": beats}, outputs={"out": len(problems)},
                            observe=("overflow",), **kwargs)


def check_synapse(params: SynapseArrayParams, problems: list[DotProduct], **kwargs: object) -> StreamRun:
    run = run_synapse(params, problems, **kwargs)
    for index, (problem, word) in enumerate(zip(problems, run["out"].payloads, strict=True)):
        got = unpack_output(params, word)
        want = reference(params, problem.values, problem.weights, problem.bias)
        assert np.array_equal(got, want), f"dot product {index}: rtl\n{got}\n!= reference\n{want}"
    assert run.final["overflow"] == 0
    return run


def random_problems(params: SynapseArrayParams, count: int, rng: np.random.Generator, *,
                    max_inputs: int = 12, input_max: int = 1) -> list[DotProduct]:
    """Random dot products of 1..max_inputs features with values in [0, input_max] and full-range weights."""
    wmax = params.weight_max
    blo, bhi = numerics.signed_range(params.bias_width)
    problems = []
    for _ in range(count):
        inputs = int(rng.integers(1, max_inputs + 1))
        values = rng.integers(0, input_max + 1, size=(inputs, params.timesteps))
        weights = rng.integers(-wmax, wmax + 1, size=(params.lanes, inputs))
        bias = rng.integers(max(blo, -4096), min(bhi, 4096) + 1, size=params.lanes)
        problems.append(DotProduct(values, weights, bias))
    return problems


def edge_problems(params: SynapseArrayParams) -> list[DotProduct]:
    """All-zero and all-one spikes, extreme weights and biases, saturation both ways, one-beat products."""
    lanes, steps, wmax = params.lanes, params.timesteps, params.weight_max
    blo, bhi = numerics.signed_range(params.bias_width)
    inputs = min(params.max_fan_in(), 40)
    ones = np.ones((inputs, steps), dtype=np.int64)
    alternating = np.tile(np.arange(steps) % 2, (inputs, 1))
    return [
        DotProduct(np.zeros((inputs, steps), dtype=np.int64), np.full((lanes, inputs), wmax),
                   np.full(lanes, bhi)),
        DotProduct(ones, np.full((lanes, inputs), wmax), np.full(lanes, bhi)),      # saturates high
        DotProduct(ones, np.full((lanes, inputs), -wmax), np.full(lanes, blo)),     # saturates low
        DotProduct(alternating, np.full((lanes, inputs), -wmax), np.zeros(lanes, dtype=np.int64)),
        DotProduct(np.ones((1, steps), dtype=np.int64), np.full((lanes, 1), wmax), np.full(lanes, -1)),
        DotProduct(np.zeros((1, steps), dtype=np.int64), np.full((lanes, 1), -wmax), np.full(lanes, blo)),
    ]


@pytest.mark.parametrize("name", sorted(PE_CONFIGS["synapse"]))
def test_random_spike_vectors_all_configs(name: str) -> None:
    params = PE_CONFIGS["synapse"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    check_synapse(params, random_problems(params, 12, rng), seed=2)


@pytest.mark.parametrize("name", ["synapse_l8_t4", "synapse_l4_t4_b1_m12", "synapse_l1_t16"])
def test_edge_cases(name: str) -> None:
    params = PE_CONFIGS["synapse"][name]
    check_synapse(params, edge_problems(params))


@pytest.mark.parametrize("input_bits", [2, 5, 8])
def test_multibit_inputs_as_bit_planes(input_bits: int) -> None:
    params = SynapseArrayParams(lanes=3, timesteps=4, input_bits=input_bits, acc_bits=24)
    rng = np.random.default_rng(input_bits)
    input_max = (1 << input_bits) - 1
    problems = random_problems(params, 8, rng, max_inputs=6, input_max=input_max)
    problems.append(DotProduct(np.full((3, 4), input_max), np.full((3, 3), -params.weight_max),
                               np.zeros(3, dtype=np.int64)))
    problems.append(DotProduct(np.full((2, 4), 1), np.full((3, 2), 5), np.zeros(3, dtype=np.int64),
                               planes=input_bits))  # upper planes all zero
    check_synapse(params, problems)


def test_backpressure_and_idle_cycles() -> None:
    params = SynapseArrayParams(lanes=4, timesteps=3, input_bits=4, acc_bits=20, membrane_bits=14)
    rng = np.random.default_rng(5)
    for seed, (valid_prob, ready_prob) in enumerate([(0.5, 1.0), (1.0, 0.2), (0.7, 0.5)]):
        problems = random_problems(params, 14, rng, max_inputs=3, input_max=15)
        check_synapse(params, problems, seed=seed, valid_prob=valid_prob, ready_prob=ready_prob)


@pytest.mark.parametrize("name", ["synapse_l8_t16", "synapse_l8_t4"])
def test_lxt_synaptic_ops_per_cycle(name: str) -> None:
    """One beat (L x T spike x weight accumulations) per cycle; result ``latency`` after each last beat."""
    params = PE_CONFIGS["synapse"][name]
    inputs, count = 7, 5
    rng = np.random.default_rng(9)
    problems = [DotProduct(p.values[:1].repeat(inputs, 0), p.weights[:, :1].repeat(inputs, 1), p.bias)
                for p in random_problems(params, count, rng, max_inputs=1)]
    run = check_synapse(params, problems)
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
    run = run_synapse(params, [DotProduct(values, weights, np.zeros(1, dtype=np.int64))])
    assert run.final["overflow"] == 1
    check_synapse(params, [DotProduct(values[:2], weights[:, :2], np.zeros(1, dtype=np.int64))])


def test_pack_layout_and_errors() -> None:
    params = SynapseArrayParams(lanes=2, timesteps=3, weight_bits=8, input_bits=4, acc_bits=16,
                                membrane_bits=10)
    word = pack_input(params, [1, 0, 1], [-1, 5], [7, -2], plane=3, last=True)
    assert word & 0b111 == 0b101                       # spikes
    assert (word >> 3) & 0b11 == 3                     # plane (plane_bits = 2)
    assert (word >> 5) & 0xFF == 0xFF                  # weight[0] = -1
    assert (word >> 13) & 0xFF == 5
    assert (word >> 21) & 0x3FF == 7                   # bias[0] (bias_width = membrane_bits)
    assert word >> (21 + 2 * 10) == 1                  # last on top
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
