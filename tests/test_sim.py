# amaranth: UnusedElaboratable=no
"""cocotb + Verilator regressions of the PEs, reachable from pytest (``make test``).

Each parametrized case generates one named configuration of
:data:`protocol.params.PE_CONFIGS`, builds it under Verilator in ``build/sim/<name>`` and
runs the PE's cocotb testbench against :mod:`contract.numerics`; a failing cocotb test
raises :class:`sim.runner.SimulationError` and fails the case. The random vectors
are split over a PE's configurations so each PE sees at least
:data:`MIN_VECTORS_PER_PE` beats in total. ``make sim`` sweeps every configuration.

The suite's own briefly trained hw-tiny export (conftest ``tiny_export``; ``SIM_EXPORT_DIR``
overrides it) is cut into PE vectors (:mod:`sim.vectors`), and every compatible
configuration also runs the testbench's ``exported_vectors`` test.

The fast tests check the payload codec against Amaranth's own layout constants and
lint the generated Verilog.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from hw.attention_pe import SpikeAttention
from hw.lif_pe import LIFArray
from hw.synapse_pe import SynapseArray
from protocol.params import PE_CONFIGS
from sim import flow, lint, runner, stimulus
from sim.payload import PayloadCodec
from sim.vectors import EXPORT_ENV, ExportedVectors, extract, find_export

ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"

#: Configurations simulated by pytest: few and small, covering T in {1, 4, 16}, L in {1, 8}
#: and the narrow-membrane corners. Parameters are always read from PE_CONFIGS.
PYTEST_CONFIGS: dict[str, tuple[str, ...]] = {
    "lif": ("lif_l1_t1", "lif_l8_t4", "lif_l1_t16", "lif_l4_t4_m8_k2"),
    "synapse": ("synapse_l1_t1", "synapse_l8_t4", "synapse_l4_t4_b1_m12"),
    "attention": ("attention_d4_g4", "attention_d16_g64", "attention_d8_g64_m10"),
}

#: Component class per PE kind, constructed here (not elaborated) to read the stream layouts.
COMPONENTS = {"lif": LIFArray, "synapse": SynapseArray, "attention": SpikeAttention}

#: Random vectors (input beats) per PE, summed over its pytest configurations.
MIN_VECTORS_PER_PE = 10_000


def _cases() -> list[pytest.param]:
    cases = []
    for kind, names in PYTEST_CONFIGS.items():
        vectors = math.ceil(MIN_VECTORS_PER_PE / len(names))
        cases += [pytest.param(kind, name, vectors, id=name) for name in names]
    return cases


@pytest.fixture(scope="module")
def exported(request: pytest.FixtureRequest) -> ExportedVectors:
    """Vectors of an exported trained hw-tiny model: ``$SIM_EXPORT_DIR``, else the suite's own."""
    explicit = os.environ.get(EXPORT_ENV)
    export_dir = find_export(Path(explicit)) if explicit else request.getfixturevalue("tiny_export")
    if export_dir is None:
        raise FileNotFoundError(f"{EXPORT_ENV}={explicit} holds no export (manifest.json)")
    # Per-process directory: parallel workers write identical files, never the same one.
    return extract(export_dir, ROOT / "vectors" / f"pid{os.getpid()}")


def test_pytest_configs_exist() -> None:
    for kind, names in PYTEST_CONFIGS.items():
        missing = sorted(set(names) - set(PE_CONFIGS[kind]))
        assert not missing, f"{missing} are not {kind} configurations in protocol.params.PE_CONFIGS"


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize(("kind", "name", "vectors"), _cases())
def test_cocotb(kind: str, name: str, vectors: int, exported: ExportedVectors) -> None:
    params = PE_CONFIGS[kind][name]
    run = flow.simulate(name, params, root=ROOT, vectors=vectors, exported=exported)
    assert run.result.tests - len(run.result.skipped) >= 4, f"only {run.result.tests} cocotb tests ran"
    assert not run.result.failed
    uses_export = exported is not None and exported.compatible(params)
    assert ("exported_vectors" in run.result.skipped) != uses_export, run.result.skipped
    assert set(run.result.skipped) <= {"exported_vectors"}, f"unexpected skips {run.result.skipped}"


@pytest.mark.sim
def test_exported_model_vectors(exported: ExportedVectors) -> None:
    """Every PE kind has a pytest configuration that runs the exported model's vectors."""
    for kind, names in PYTEST_CONFIGS.items():
        compatible = [n for n in names if exported.compatible(PE_CONFIGS[kind][n])]
        assert compatible, (
            f"no pytest {kind} configuration takes the exported model's vectors ({exported.summary[kind]})"
        )


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in PYTEST_CONFIGS.items() for n in names])
def test_codec_matches_layout(kind: str, name: str) -> None:
    """The fast packer gives exactly Amaranth's ``layout.const(...).as_value().value``."""
    component = COMPONENTS[kind](PE_CONFIGS[kind][name])
    rng = random.Random(name)
    ports = [
        port
        for port, member in component.signature.members.items()
        if member.is_signature and "payload" in member.signature.members
    ]
    assert ports, f"{name} has no stream ports"
    for port in ports:
        codec = PayloadCodec.of(component, port)
        for _ in range(5):
            word = rng.getrandbits(codec.size)
            value = codec.unpack(word)
            assert codec.pack(value) == word
            layout = codec.shape
            if hasattr(layout, "const"):
                assert layout.const(value).as_value().value == word


def _stimulus_payloads(kind: str, params: object, seed: int) -> dict[str, list[dict]]:
    """Random and edge-case payloads of ``kind`` from :mod:`sim.stimulus`, per input port."""
    rng = np.random.default_rng(seed)
    if kind == "lif":
        beats = [stimulus.lif_vectors(params, rng, 50), stimulus.lif_edge_vectors(params, rng, drives=8)]
        return {"inp": [p for b in beats for p in stimulus.lif_payloads(b)]}
    if kind == "synapse":
        dots = stimulus.synapse_vectors(params, rng, 200) + stimulus.synapse_edge_vectors(params, rng)
        return {"inp": [p for d in dots for p in stimulus.synapse_payloads(params, d, rng, shuffle=True)]}
    groups = stimulus.attention_vectors(params, rng, 100) + stimulus.attention_edge_vectors(params, rng)
    kv, q = stimulus.attention_payloads(groups)
    return {"kv": kv, "q": q}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in PYTEST_CONFIGS.items() for n in names])
def test_stimulus_fits_the_layouts_and_its_seed_reproduces_it(kind: str, name: str) -> None:
    """Every generated payload packs into its port (the codec checks each field's range), and
    a seed gives the same payload integers again, whatever simulator runs them."""
    params = PE_CONFIGS[kind][name]
    component = COMPONENTS[kind](params)
    packed = {}
    for seed in (1, 1, 2):
        payloads = _stimulus_payloads(kind, params, seed)
        packed.setdefault(seed, []).append(
            {
                port: [PayloadCodec.of(component, port).pack(p) for p in beats]
                for port, beats in payloads.items()
            }
        )
    assert packed[1][0] == packed[1][1] != packed[2][0]


def test_codec_rejects_out_of_range() -> None:
    component = LIFArray(PE_CONFIGS["lif"]["lif_l1_t1"])
    codec = PayloadCodec.of(component, "inp")
    value = codec.unpack(0)
    value["current"][0][0] = 1 << 40
    with pytest.raises(ValueError, match=r"current\[0\]\[0\]"):
        codec.pack(value)
    with pytest.raises(KeyError, match="no stream port"):
        PayloadCodec.of(component, "nope")


@pytest.mark.slow
@pytest.mark.sim
def test_lint_generated_verilog(tmp_path: Path) -> None:
    """``verilator --lint-only -Wall`` passes on the pytest configurations (make rtl lints all)."""
    waivers = lint.write_waivers(tmp_path)
    for kind, names in PYTEST_CONFIGS.items():
        for name in names:
            verilog = flow.write_verilog(name, PE_CONFIGS[kind][name], tmp_path)
            lint.lint(verilog, waivers=waivers)


def test_lint_catches_a_warning(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input wire [3:0] a, output wire [1:0] y);\n  assign y = a;\nendmodule\n")
    with pytest.raises(lint.LintError, match="WIDTH"):
        lint.lint(bad, waivers=lint.write_waivers(tmp_path))


def test_missing_verilog_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runner.build([tmp_path / "none.v"], toplevel="none", build_dir=tmp_path)


def test_waves_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVES", "1")
    assert runner.waves_requested()
    monkeypatch.setenv("WAVES", "0")
    assert not runner.waves_requested()
    monkeypatch.delenv("WAVES")
    assert not runner.waves_requested()
