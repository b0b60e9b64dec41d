# amaranth: UnusedElaboratable=no
"""SerialSynapseArray (chunked output) == numerics.synaptic_current, beat for beat like the synapse PE."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

from contract import numerics
from hw.accel.serial_synapse import SerialSynapseArray, dot_product_beats, output_layout
from hw.synapse_pe import reference
from protocol.params import SynapseArrayParams
from sim.testbench import simulate_streams


def _unpack(params: SynapseArrayParams, out_lanes: int, words: list[int]) -> list[np.ndarray]:
    """Chunk beats -> one ``[T, L]`` current array per result (checks the chunk order)."""
    chunks = params.lanes // out_lanes
    layout = output_layout(params, out_lanes)
    results = []
    for start in range(0, len(words), chunks):
        currents = np.zeros((params.timesteps, params.lanes), dtype=np.int64)
        for k, word in enumerate(words[start : start + chunks]):
            beat = data.Const(layout, word)
            assert int(beat.chunk) == k
            for lane in range(out_lanes):
                for t in range(params.timesteps):
                    currents[t, k * out_lanes + lane] = beat.current[lane][t]
        results.append(currents)
    return results


@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize(
    ("params", "out_lanes", "valid", "ready"),
    [
        (SynapseArrayParams(lanes=8, timesteps=4, acc_bits=20), 2, 1.0, 1.0),
        (SynapseArrayParams(lanes=8, timesteps=4, acc_bits=20), 4, 0.7, 0.4),
        (
            SynapseArrayParams(
                lanes=4, timesteps=2, input_bits=1, acc_bits=12, membrane_bits=10, bias_bits=10
            ),
            1,
            0.8,
            0.6,
        ),
    ],
)
def test_serial_array_matches_reference(
    params: SynapseArrayParams, out_lanes: int, valid: float, ready: float, words: int
) -> None:
    rng = np.random.default_rng(7)
    problems = []
    blo, bhi = numerics.signed_range(params.bias_width)
    for i in range(12):
        # Short products (one beat) stress the hand-over; the narrow config saturates often.
        inputs = 1 if i % 4 == 0 else int(rng.integers(2, 10))
        values = rng.integers(
            0, min(params.input_bits, 3) ** 2 + 1 if params.input_bits > 1 else 2, (inputs, params.timesteps)
        )
        weights = rng.integers(-params.weight_max, params.weight_max + 1, (params.lanes, inputs))
        bias = rng.integers(max(blo, -3000), min(bhi, 3000) + 1, params.lanes)
        problems.append((values, weights, bias))
    beats = [b for v, w, bias in problems for b in dot_product_beats(params, v, w, bias, words=words)]
    chunks = params.lanes // out_lanes
    run = simulate_streams(
        SerialSynapseArray(params, out_lanes=out_lanes, words=words),
        inputs={"inp": beats},
        outputs={"out": chunks * len(problems)},
        seed=3,
        valid_prob=valid,
        ready_prob=ready,
        observe=("overflow",),
    )
    got = _unpack(params, out_lanes, run["out"].payloads)
    for index, ((values, weights, bias), currents) in enumerate(zip(problems, got, strict=True)):
        expected = reference(params, values, weights, bias)
        assert np.array_equal(currents, expected), f"dot product {index}:\n{currents}\n!=\n{expected}"
    assert run.final["overflow"] == 0


@pytest.mark.parametrize("words", [1, 2])
def test_serial_array_streams_a_beat_per_cycle_plus_a_flush(words: int) -> None:
    """Results leave while the next product accumulates: a dot product of ``n`` beats takes
    ``n + 1`` cycles (the flush), with no other input stall when products are long."""
    params = SynapseArrayParams(lanes=8, timesteps=4, acc_bits=20)
    rng = np.random.default_rng(1)
    beats = []
    products = 4
    for _ in range(products):
        beats += dot_product_beats(
            params,
            rng.integers(0, 2, (8 * words, 4)),
            rng.integers(-9, 10, (8, 8 * words)),
            np.zeros(8, dtype=np.int64),
            planes=1,
            words=words,
        )
    assert len(beats) == 8 * products
    run = simulate_streams(
        SerialSynapseArray(params, out_lanes=2, words=words), inputs={"inp": beats}, outputs={"out": 16}
    )
    cycles = run["inp"].cycles
    assert cycles[-1] - cycles[0] == len(beats) - 1 + products - 1


def test_overflow_is_flagged() -> None:
    """A sum beyond the signed acc_bits range raises the sticky flag (and only then)."""
    params = SynapseArrayParams(lanes=4, timesteps=2, input_bits=1, acc_bits=9, membrane_bits=12)
    ones = np.ones((4, 2), dtype=np.int64)
    for weight, expected in ((60, 0), (70, 1)):  # 4 x 60 = 240 fits 9 bits, 4 x 70 = 280 does not
        beats = dot_product_beats(params, ones, np.full((4, 4), weight), np.zeros(4, dtype=np.int64), words=2)
        run = simulate_streams(
            SerialSynapseArray(params, out_lanes=4, words=2),
            inputs={"inp": beats},
            outputs={"out": 1},
            observe=("overflow",),
        )
        assert run.final["overflow"] == expected, weight


@pytest.mark.parametrize("words", [1, 2])
def test_overflow_on_early_beats_stays_flagged(words: int) -> None:
    """Lane 0 overflows and lane 1 underflows on early beats, the later beats bring both sums
    back in range (the wrapped results are exact again) and a clean dot product follows:
    the flag stays raised, so it cannot reflect only the last beat or the last product."""
    params = SynapseArrayParams(lanes=2, timesteps=2, input_bits=1, acc_bits=9, membrane_bits=12)
    up, down = [127] * 4, [-127] * 4
    weights = np.array([up + down + [1, 1], down + up + [-1, -1]])
    lo, hi = numerics.signed_range(params.acc_bits)
    partial = np.cumsum(weights, axis=1)[:, words - 1 :: words]  # after each beat of `words` inputs
    assert ((partial < lo) | (partial > hi)).any(axis=1).all()
    assert ((partial[:, -2:] >= lo) & (partial[:, -2:] <= hi)).all()
    ones, bias = np.ones((weights.shape[1], 2), dtype=np.int64), np.array([3, -3])
    problems = [(ones, weights, bias), (ones[:2], weights[:, -2:], bias)]
    beats = [beat for problem in problems for beat in dot_product_beats(params, *problem, words=words)]
    run = simulate_streams(
        SerialSynapseArray(params, out_lanes=1, words=words),
        inputs={"inp": beats},
        outputs={"out": 2 * len(problems)},
        observe=("overflow",),
    )
    for problem, currents in zip(problems, _unpack(params, 1, run["out"].payloads), strict=True):
        assert np.array_equal(currents, reference(params, *problem))
    assert run.final["overflow"] == 1


def test_bad_words_per_beat() -> None:
    with pytest.raises(ValueError, match="words per beat must be one of"):
        SerialSynapseArray(SynapseArrayParams(lanes=8), out_lanes=4, words=3)


def test_bad_out_lanes() -> None:
    with pytest.raises(ValueError, match="out_lanes must divide"):
        SerialSynapseArray(SynapseArrayParams(lanes=8), out_lanes=3)


def _netlist(params: SynapseArrayParams, words: int, workdir: Path) -> dict:
    """``synth_xilinx -flatten`` of the array (as ``sim.accel.synth`` runs the top) as a JSON netlist."""
    from amaranth.back import rtlil

    from sim.tools import yosys_executable

    source, netlist = workdir / "array.il", workdir / "array.json"
    source.write_text(rtlil.convert(SerialSynapseArray(params, out_lanes=2, words=words), name="top"))
    script = f"read_rtlil {source}; synth_xilinx -family xc7 -noiopad -flatten -top top; write_json {netlist}"
    subprocess.run([str(yosys_executable()), "-q", "-p", script], check=True, capture_output=True)
    return json.loads(netlist.read_text())["modules"]["top"]


@pytest.mark.synth
@pytest.mark.parametrize("words", [1, 2])
def test_accumulators_cost_one_lut_per_bit(words: int, tmp_path: Path) -> None:
    """What makes the pynq-z2 preset fit: after Yosys' xc7 mapping, every accumulator bit is
    a flip-flop feeding its own carry chain's DI, and one LUT of its own drives the chain's
    S input; with two words it reads the beat's spikes straight from the input (the
    addend choice is inside it)."""
    if shutil.which("yosys") is None and not Path("/usr/bin/yosys").is_file():
        pytest.skip("yosys is not installed (apt-get install -y yosys, or make setup)")
    params = SynapseArrayParams(lanes=2, timesteps=2, input_bits=4, acc_bits=16, membrane_bits=20)
    net = _netlist(params, words, tmp_path)
    cells = net["cells"]
    drivers = {
        bit: (name, cell["type"])
        for name, cell in cells.items()
        for port, bits in cell["connections"].items()
        if cell["port_directions"][port] == "output"
        for bit in bits
        if isinstance(bit, int)
    }
    spikes = set(net["ports"]["inp__payload"]["bits"][: words * params.timesteps])
    loops, spike_luts = [], 0
    for cell in cells.values():
        if cell["type"] != "CARRY4":
            continue
        ports = cell["connections"]
        for di, out, s in zip(ports["DI"], ports["O"], ports["S"], strict=True):
            ff = drivers.get(di) if isinstance(di, int) else None
            if ff is None or ff[1] != "FDRE" or cells[ff[0]]["connections"]["D"] != [out]:
                continue
            lut_name, lut_type = drivers[s]
            assert lut_type.startswith("LUT"), f"S of accumulator bit {ff[0]} comes from a {lut_type}"
            inputs = {
                b
                for port, bits in cells[lut_name]["connections"].items()
                if port.startswith("I")
                for b in bits
            }
            assert di in inputs, f"the sum LUT {lut_name} does not read accumulator bit {ff[0]}"
            loops.append(lut_name)
            spike_luts += len(inputs & spikes) == words
    accumulators = params.lanes * params.timesteps
    assert len(loops) == accumulators * params.acc_bits
    assert len(set(loops)) == len(loops)  # one LUT per bit
    if words == 2:
        # The bits below the addend's sign pick w0, w1 or w0 + w1 by the two spikes inside
        # their sum LUT (the upper bits share a sign net).
        assert spike_luts >= accumulators * params.weight_bits
    else:
        assert spike_luts == 0  # the spike is only the clock enable
