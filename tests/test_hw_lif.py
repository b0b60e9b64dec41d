# amaranth: UnusedElaboratable=no
"""LIF PE array in Amaranth's simulator: RTL spikes == contract.numerics.lif, beat for beat."""

from __future__ import annotations

import numpy as np
import pytest

import hw.lif_pe as lif_pe
from contract import numerics
from hw.lif_pe import LIFArray, pack_input, reference, unpack_output
from protocol.params import PE_CONFIGS, LIFArrayParams
from sim.stimulus import LIFBeats, bit_rows, lif_edge_vectors, lif_payloads, lif_vectors
from sim.testbench import simulate_streams


def run_lif(
    params: LIFArrayParams,
    beats: LIFBeats,
    *,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
) -> tuple[np.ndarray, list[int], list[int]]:
    """Simulate ``beats``; return the spikes [N, T, L] and the input and output cycles."""
    run = simulate_streams(
        LIFArray(params),
        inputs={"inp": lif_payloads(beats)},
        outputs={"out": len(beats)},
        seed=seed,
        valid_prob=valid_prob,
        ready_prob=ready_prob,
    )
    words = run.fields("out")
    assert [word["last"] for word in words] == beats.last.tolist(), "last flag not carried"
    spikes = np.stack([bit_rows(word["spikes"], params.timesteps).T for word in words])
    return spikes, run["inp"].cycles, run["out"].cycles


def check_lif(params: LIFArrayParams, beats: LIFBeats, **kwargs: object) -> None:
    spikes, _, _ = run_lif(params, beats, **kwargs)
    expected = reference(params, np.moveaxis(beats.currents, 1, 0), beats.thresholds)  # [T, N, L]
    expected = np.moveaxis(expected, 0, 1)
    mismatch = np.argwhere(spikes != expected)
    assert not mismatch.size, (
        f"{len(mismatch)} spike mismatches, first at (beat, t, lane) = "
        f"{tuple(mismatch[0])}: rtl {spikes[tuple(mismatch[0])]}, "
        f"ref {expected[tuple(mismatch[0])]}"
    )


@pytest.mark.parametrize("name", sorted(PE_CONFIGS["lif"]))
def test_random_vectors_all_configs(name: str) -> None:
    params = PE_CONFIGS["lif"][name]
    rng = np.random.default_rng(sum(map(ord, name)))
    check_lif(params, lif_vectors(params, rng, 48), seed=1)


@pytest.mark.parametrize("name", ["lif_l1_t4", "lif_l8_t4", "lif_l4_t4_m8_k2", "lif_l1_t16"])
def test_edge_cases(name: str) -> None:
    params = PE_CONFIGS["lif"][name]
    check_lif(params, lif_edge_vectors(params, np.random.default_rng(sum(map(ord, name)))))


@pytest.mark.parametrize("leak_shift", [0, 1, 3])
def test_leak_shifts(leak_shift: int) -> None:
    params = LIFArrayParams(lanes=4, timesteps=6, membrane_bits=10, leak_shift=leak_shift)
    rng = np.random.default_rng(leak_shift)
    check_lif(params, lif_vectors(params, rng, 64))
    check_lif(params, lif_edge_vectors(params, rng))


def test_backpressure_and_idle_cycles() -> None:
    params = LIFArrayParams(lanes=3, timesteps=5, membrane_bits=12, leak_shift=1, stage_steps=2)
    rng = np.random.default_rng(7)
    for seed, (valid_prob, ready_prob) in enumerate([(0.5, 1.0), (1.0, 0.3), (0.6, 0.5)]):
        check_lif(
            params, lif_vectors(params, rng, 60), seed=seed, valid_prob=valid_prob, ready_prob=ready_prob
        )


@pytest.mark.parametrize("name", ["lif_l8_t4", "lif_l8_t16_s2", "lif_l1_t1"])
def test_one_beat_per_cycle(name: str) -> None:
    """Sustained rate L x T neuron steps per cycle: beat n enters at cycle n, leaves at n + latency."""
    params = PE_CONFIGS["lif"][name]
    beats = 40
    _, cycles_in, cycles_out = run_lif(params, lif_vectors(params, np.random.default_rng(3), beats))
    assert cycles_in == list(range(beats))
    assert cycles_out == [n + params.latency for n in range(beats)]
    assert cycles_out[-1] + 1 == params.cycles(beats)


def test_mutated_leak_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """An off-by-one leak shift in the generator must make the comparison fail."""
    params = LIFArrayParams(lanes=4, timesteps=4, membrane_bits=12, leak_shift=1)
    beats = lif_vectors(params, np.random.default_rng(11), 32)
    check_lif(params, beats)
    monkeypatch.setattr(lif_pe, "_leak", lambda diff, shift: diff >> (shift + 1))
    with pytest.raises(AssertionError, match="spike mismatches"):
        check_lif(params, beats)


def test_pack_roundtrip_and_layout() -> None:
    params = LIFArrayParams(lanes=2, timesteps=3, membrane_bits=6)
    currents = np.array([[1, -2], [31, -32], [0, 5]])
    word = pack_input(params, currents, [32, -32], last=True)
    m, t, lanes = params.membrane_bits, params.timesteps, params.lanes
    # current[l][t] at bit (l * T + t) * M; threshold[l] after all currents; last on top.
    assert (word >> ((0 * t + 1) * m)) & 0x3F == 31
    assert (word >> ((1 * t + 1) * m)) & 0x3F == 0x3F & -32
    assert (word >> (lanes * t * m)) & 0x7F == 32
    assert word >> (lanes * t * m + lanes * (m + 1)) == 1
    spikes, last = unpack_output(params, 0b1_100_010)
    assert last and spikes.tolist() == [[0, 0], [1, 0], [0, 1]]


def test_pack_rejects_bad_input() -> None:
    params = LIFArrayParams(lanes=2, timesteps=3, membrane_bits=6)
    with pytest.raises(ValueError, match="shape"):
        pack_input(params, np.zeros((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="currents must lie in the signed 6-bit range"):
        pack_input(params, np.full((3, 2), 32), [0, 0])
    with pytest.raises(ValueError, match="thresholds must lie"):
        pack_input(params, np.zeros((3, 2)), [0, 64])


def test_clamp_threshold_is_exact() -> None:
    params = LIFArrayParams(lanes=1, timesteps=8, membrane_bits=6, leak_shift=0)
    lo, hi = numerics.signed_range(6)
    x = np.arange(lo, hi + 1)[None, :].repeat(8, axis=0)
    for theta in (-1000, lo - 1, hi + 1, hi + 2, 1000):
        clamped = params.clamp_threshold(theta)
        assert np.array_equal(reference(params, x, theta), reference(params, x, clamped))


def test_params_validation() -> None:
    with pytest.raises(TypeError, match=r"LIFArrayParams.lanes must be an integer, not 2.0"):
        LIFArrayParams(lanes=2.0)
    with pytest.raises(ValueError, match=r"LIFArrayParams.timesteps must be an integer in \[1, 256\], not 0"):
        LIFArrayParams(timesteps=0)
    with pytest.raises(ValueError, match="stage_steps"):
        LIFArrayParams(timesteps=4, stage_steps=5)
    with pytest.raises(TypeError):
        LIFArrayParams(8, 4)  # keyword-only
    with pytest.raises(TypeError, match="LIFArray parameters must be a LIFArrayParams"):
        LIFArray({"lanes": 8})
    params = LIFArrayParams(lanes=8, timesteps=16, stage_steps=3)
    assert params.stages == 6 and params.latency == 6 and params.neuron_steps_per_cycle == 128
    assert LIFArrayParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="has no parameter"):
        LIFArrayParams.from_dict({**params.to_dict(), "lane": 1})
    assert (
        LIFArrayParams.from_numerics(
            numerics.NumericsConfig(membrane_bits=16, leak_shift=2), lanes=2, timesteps=4
        ).membrane_bits
        == 16
    )
