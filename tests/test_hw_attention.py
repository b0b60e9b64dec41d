# amaranth: UnusedElaboratable=no
"""Spike-attention PE in Amaranth's simulator: RTL rows == numerics.attention_current, per group."""

from __future__ import annotations

import numpy as np
import pytest

from golden import numerics
from hw.attention_pe import SpikeAttention, group_beats, pack_kv, pack_q, reference, unpack_output
from hw.params import PE_CONFIGS, AttentionParams
from hw.testbench import StreamRun, simulate_streams

Group = tuple[np.ndarray, np.ndarray, np.ndarray]  # q, k, v: [G, d] spikes each


def run_attention(params: AttentionParams, groups: list[Group], **kwargs: object) -> StreamRun:
    kv_beats: list[int] = []
    q_beats: list[int] = []
    for q, k, v in groups:
        kv, qs = group_beats(params, q, k, v)
        kv_beats += kv
        q_beats += qs
    return simulate_streams(SpikeAttention(params), inputs={"kv": kv_beats, "q": q_beats},
                            outputs={"out": len(q_beats)}, observe=("group_overflow",), **kwargs)


def check_attention(params: AttentionParams, groups: list[Group], **kwargs: object) -> tuple[StreamRun, list]:
    """Compare every output row with the reference; return the run and the per-group currents."""
    run = run_attention(params, groups, **kwargs)
    rows = [unpack_output(params, word) for word in run["out"].payloads]
    currents, start = [], 0
    for index, (q, k, v) in enumerate(groups):
        got = np.stack([row for row, _ in rows[start:start + len(q)]])
        lasts = [last for _, last in rows[start:start + len(q)]]
        assert lasts == [False] * (len(q) - 1) + [True], f"group {index}: last flags {lasts}"
        want = reference(params, q, k, v)
        assert np.array_equal(got, want), f"group {index} (G={len(q)}): rtl\n{got}\n!= reference\n{want}"
        currents.append(got)
        start += len(q)
    assert run.final["group_overflow"] == 0
    return run, currents


def random_group(params: AttentionParams, size: int, rng: np.random.Generator) -> Group:
    density = rng.uniform(0.05, 0.95)
    q, k, v = (rng.random((3, size, params.head_dim)) < density).astype(np.int64)
    return q, k, v


@pytest.mark.parametrize("name", sorted(PE_CONFIGS["attention"]))
def test_random_groups_all_configs(name: str) -> None:
    params = PE_CONFIGS["attention"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    sizes = [1, params.max_group, *rng.integers(1, params.max_group + 1, size=3)]
    check_attention(params, [random_group(params, int(size), rng) for size in sizes], seed=4)


@pytest.mark.parametrize("name", ["attention_d8_g64_m10", "attention_d4_g4"])
def test_edge_cases(name: str) -> None:
    """All-zero and all-one spikes (the largest sum d * G, saturating with a narrow membrane)."""
    params = PE_CONFIGS["attention"][name]
    d, g = params.head_dim, params.max_group
    zeros, ones = np.zeros((g, d), dtype=np.int64), np.ones((g, d), dtype=np.int64)
    eye = np.eye(d, dtype=np.int64)[np.arange(g) % d]
    groups = [(ones, ones, ones), (zeros, ones, ones), (ones, zeros, ones), (ones, ones, zeros),
              (eye, eye, ones), (ones[:1], ones[:1], ones[:1])]
    _, currents = check_attention(params, groups)
    top = min(d * g << params.frac_bits, numerics.signed_range(params.membrane_bits)[1])
    assert currents[0].min() == currents[0].max() == top


def test_groupings_joint_temporal_spatial() -> None:
    """The same Q, K, V tokens [T, N, d] grouped three ways, G set per group by the streams."""
    steps, tokens = 4, 4
    params = AttentionParams(head_dim=8, max_group=steps * tokens)
    rng = np.random.default_rng(12)
    q, k, v = (rng.random((3, steps, tokens, params.head_dim)) < 0.4).astype(np.int64)
    layouts = {
        "joint": lambda x: x.reshape(1, steps * tokens, -1),      # one group of T*N tokens
        "temporal": lambda x: x.transpose(1, 0, 2),               # N groups of the T steps of a token
        "spatial": lambda x: x,                                    # T groups of the N tokens of a step
    }
    for grouping, regroup in layouts.items():
        groups = list(zip(regroup(q), regroup(k), regroup(v), strict=True))
        _, currents = check_attention(params, groups)
        expected = numerics.attention_current(regroup(q), regroup(k), regroup(v),
                                              frac_bits=params.frac_bits, membrane_bits=params.membrane_bits)
        assert np.array_equal(np.stack(currents), expected), grouping


def test_backpressure_and_idle_cycles() -> None:
    params = AttentionParams(head_dim=5, max_group=9, membrane_bits=9)
    rng = np.random.default_rng(8)
    for seed, (valid_prob, ready_prob) in enumerate([(0.4, 1.0), (1.0, 0.3), (0.6, 0.5)]):
        groups = [random_group(params, int(size), rng) for size in rng.integers(1, 10, size=5)]
        check_attention(params, groups, seed=seed, valid_prob=valid_prob, ready_prob=ready_prob)


@pytest.mark.parametrize("name", ["attention_d16_g64", "attention_d8_g16"])
def test_one_row_per_cycle(name: str) -> None:
    """K/V rows then Q rows at one per cycle; groups back to back; outputs one cycle after their query."""
    params = PE_CONFIGS["attention"][name]
    size, count = params.max_group // 2, 3
    rng = np.random.default_rng(6)
    run, _ = check_attention(params, [random_group(params, size, rng) for _ in range(count)])
    period = 2 * size
    assert run["kv"].cycles == [n * period + g for n in range(count) for g in range(size)]
    assert run["q"].cycles == [n * period + size + g for n in range(count) for g in range(size)]
    assert run["out"].cycles == [cycle + params.latency for cycle in run["q"].cycles]
    assert run["out"].cycles[-1] + 1 == params.cycles(size, groups=count)


def test_group_overflow_flag() -> None:
    params = AttentionParams(head_dim=2, max_group=3)
    ones = np.ones((4, 2), dtype=np.int64)
    kv_beats = [pack_kv(params, ones[g], ones[g], last=g == 3) for g in range(4)]
    q_beats = [pack_q(params, ones[0], last=True)]
    run = simulate_streams(SpikeAttention(params), inputs={"kv": kv_beats, "q": q_beats}, outputs={"out": 1},
                           observe=("group_overflow",))
    assert run.final["group_overflow"] == 1
    check_attention(params, [(ones[:3], ones[:3], ones[:3])])


def test_pack_layout_and_errors() -> None:
    params = AttentionParams(head_dim=3, max_group=4, membrane_bits=6)
    assert pack_kv(params, [1, 0, 0], [0, 1, 1], last=True) == 0b1_110_001
    assert pack_q(params, [0, 1, 0]) == 0b0_010
    current, last = unpack_output(params, (1 << 18) | (0b111111 << 12) | 5)
    assert current.tolist() == [5, 0, -1] and last
    with pytest.raises(ValueError, match="k must be 3 spikes"):
        pack_kv(params, [2, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="1 <= G <= 4"):
        group_beats(params, *np.zeros((3, 5, 3), dtype=np.int64))


def test_params_validation_and_cycles() -> None:
    with pytest.raises(ValueError, match=r"AttentionParams.head_dim must be an integer in \[1, 256\], not 0"):
        AttentionParams(head_dim=0)
    with pytest.raises(TypeError, match="SpikeAttention parameters must be an AttentionParams"):
        SpikeAttention(None)
    params = AttentionParams(head_dim=16, max_group=64)
    assert params.count_bits == 7 and params.sum_bits == 11 and params.ops_per_cycle == 256
    assert params.cycles(10, queries=5, groups=2) == 31
    with pytest.raises(ValueError, match="cycles\\(group\\)"):
        params.cycles(65)
    assert AttentionParams.from_dict(params.to_dict()) == params
