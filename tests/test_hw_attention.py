# amaranth: UnusedElaboratable=no
"""Spike-attention PE in Amaranth's simulator: RTL rows == numerics.attention_current, per group."""

from __future__ import annotations

import numpy as np
import pytest

from contract import numerics
from hw.attention_pe import SpikeAttention, group_beats, pack_kv, pack_q, reference, unpack_output
from protocol.params import PE_CONFIGS, AttentionParams
from sim.stimulus import Group, attention_edge_vectors, attention_group, attention_payloads
from sim.testbench import StreamRun, simulate_streams


def run_attention(params: AttentionParams, groups: list[Group], **kwargs: object) -> StreamRun:
    kv, q = attention_payloads(groups)
    return simulate_streams(
        SpikeAttention(params),
        inputs={"kv": kv, "q": q},
        outputs={"out": len(q)},
        observe=("group_overflow",),
        **kwargs,
    )


def check_attention(params: AttentionParams, groups: list[Group], **kwargs: object) -> tuple[StreamRun, list]:
    """Compare every output row with the reference; return the run and the per-group currents."""
    run = run_attention(params, groups, **kwargs)
    rows = run.fields("out")
    currents, start = [], 0
    for index, group in enumerate(groups):
        size = len(group.q)
        got = np.array([row["current"] for row in rows[start : start + size]], dtype=np.int64)
        lasts = [bool(row["last"]) for row in rows[start : start + size]]
        assert lasts == [False] * (size - 1) + [True], f"group {index}: last flags {lasts}"
        want = reference(params, group.q, group.k, group.v)
        assert np.array_equal(got, want), f"group {index} (G={size}): rtl\n{got}\n!= reference\n{want}"
        currents.append(got)
        start += size
    assert run.final["group_overflow"] == 0
    return run, currents


@pytest.mark.parametrize("name", sorted(PE_CONFIGS["attention"]))
def test_random_groups_all_configs(name: str) -> None:
    params = PE_CONFIGS["attention"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    sizes = [1, params.max_group, *rng.integers(1, params.max_group + 1, size=3)]
    check_attention(params, [attention_group(params, rng, int(size)) for size in sizes], seed=4)


@pytest.mark.parametrize("name", ["attention_d8_g64_m10", "attention_d4_g4"])
def test_edge_cases(name: str) -> None:
    """All-zero and all-one spikes (the largest sum d * G, saturating with a narrow membrane)."""
    params = PE_CONFIGS["attention"][name]
    d = params.head_dim
    groups = attention_edge_vectors(params, np.random.default_rng(sum(map(ord, name))))
    _, currents = check_attention(params, groups)
    full = [
        (len(g.q), c) for g, c in zip(groups, currents, strict=True) if g.q.all() and g.k.all() and g.v.all()
    ]
    assert max(size for size, _ in full) == params.max_group
    for size, current in full:
        top = min(d * size << params.frac_bits, numerics.signed_range(params.membrane_bits)[1])
        assert current.min() == current.max() == top


def test_groupings_joint_temporal_spatial() -> None:
    """The same Q, K, V tokens [T, N, d] grouped three ways, G set per group by the streams."""
    steps, tokens = 4, 4
    params = AttentionParams(head_dim=8, max_group=steps * tokens)
    rng = np.random.default_rng(12)
    q, k, v = (rng.random((3, steps, tokens, params.head_dim)) < 0.4).astype(np.int64)
    layouts = {
        "joint": lambda x: x.reshape(1, steps * tokens, -1),  # one group of T*N tokens
        "temporal": lambda x: x.transpose(1, 0, 2),  # N groups of the T steps of a token
        "spatial": lambda x: x,  # T groups of the N tokens of a step
    }
    for grouping, regroup in layouts.items():
        groups = [Group(*qkv) for qkv in zip(regroup(q), regroup(k), regroup(v), strict=True)]
        _, currents = check_attention(params, groups)
        expected = numerics.attention_current(
            regroup(q), regroup(k), regroup(v), frac_bits=params.frac_bits, membrane_bits=params.membrane_bits
        )
        assert np.array_equal(np.stack(currents), expected), grouping


def test_backpressure_and_idle_cycles() -> None:
    params = AttentionParams(head_dim=5, max_group=9, membrane_bits=9)
    rng = np.random.default_rng(8)
    for seed, (valid_prob, ready_prob) in enumerate([(0.4, 1.0), (1.0, 0.3), (0.6, 0.5)]):
        groups = [attention_group(params, rng, int(size)) for size in rng.integers(1, 10, size=5)]
        check_attention(params, groups, seed=seed, valid_prob=valid_prob, ready_prob=ready_prob)


@pytest.mark.parametrize("name", ["attention_d16_g64", "attention_d8_g16"])
def test_one_row_per_cycle(name: str) -> None:
    """K/V rows then Q rows at one per cycle; groups back to back; outputs one cycle after their query."""
    params = PE_CONFIGS["attention"][name]
    size, count = params.max_group // 2, 3
    rng = np.random.default_rng(6)
    run, _ = check_attention(params, [attention_group(params, rng, size) for _ in range(count)])
    period = 2 * size
    assert run["kv"].cycles == [n * period + g for n in range(count) for g in range(size)]
    assert run["q"].cycles == [n * period + size + g for n in range(count) for g in range(size)]
    assert run["out"].cycles == [cycle + params.latency for cycle in run["q"].cycles]
    assert run["out"].cycles[-1] + 1 == params.cycles(size, groups=count)


def test_group_overflow_flag() -> None:
    params = AttentionParams(head_dim=2, max_group=3)
    ones = np.ones((4, 2), dtype=np.int64)
    run = run_attention(params, [Group(ones[:1], ones, ones)])  # four K/V rows, one query
    assert run.final["group_overflow"] == 1
    check_attention(params, [Group(ones[:3], ones[:3], ones[:3])])


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
