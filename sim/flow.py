"""Generate, build and simulate PE configurations: the engine behind ``make sim`` and pytest.

For one named configuration of :data:`protocol.params.PE_CONFIGS` (or any parameter
object) :func:`simulate` writes the Verilog with :func:`hw.generate.verilog_of`
into ``<root>/<name>/``, builds it under Verilator there (one build directory per
parameter set, reused while the Verilog is unchanged) and runs the PE's cocotb
testbench, passing the parameters as JSON so the testbench rebuilds the component
and reads its layouts back.

``python -m sim`` (``make sim``) sweeps every configuration and prints a summary
with the seed of each run; ``COCOTB_RANDOM_SEED`` reproduces a run, ``WAVES=1``
writes ``dump.fst`` next to each build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib import wiring

from hw.generate import build_component, verilog_of, write_if_changed
from protocol.params import PE_CONFIGS, PEParams
from sim import runner
from sim.bench import EXPORT_VECTORS_ENV, PARAMS_ENV, VECTORS_ENV
from sim.vectors import ExportedVectors, VectorError, extract, find_export

__all__ = ["TESTBENCHES", "DEFAULT_ROOT", "SimRun", "write_verilog", "simulate", "main"]

#: PE kind -> cocotb testbench module.
TESTBENCHES: dict[str, str] = {
    "lif": "sim.tb_lif",
    "synapse": "sim.tb_synapse",
    "attention": "sim.tb_attention",
}

#: Default root of the per-configuration build directories.
DEFAULT_ROOT = Path("build/sim")


@dataclass(frozen=True)
class SimRun:
    """One configuration's regression: its name, parameters and the runner's result."""

    name: str
    params: PEParams
    result: runner.SimResult
    build_seconds: float


def write_verilog(
    name: str, params: PEParams, directory: Path, *, component: wiring.Component | None = None
) -> Path:
    """Write ``<directory>/<name>.v`` for ``params`` (or for a given ``component``)."""
    component = build_component(params) if component is None else component
    path = Path(directory) / f"{name}.v"
    write_if_changed(path, verilog_of(component, name=name))
    return path


def simulate(
    name: str,
    params: PEParams,
    *,
    root: Path = DEFAULT_ROOT,
    vectors: int | None = None,
    seed: int | None = None,
    testcase: str | None = None,
    env: Mapping[str, str] | None = None,
    waves: bool | None = None,
    objcache: Path | None = None,
    exported: ExportedVectors | None = None,
) -> SimRun:
    """Generate, build and run the cocotb testbench of one PE configuration.

    Parameters
    ----------
    name:
        Configuration name; also the Verilog top module and the build directory.
    params:
        The PE parameters (``protocol.params``); the testbench is chosen by ``params.kind``.
    root:
        Parent of the build directory ``<root>/<name>``.
    vectors:
        Random vectors (beats) of the ``random_vectors`` test; ``None`` keeps the
        testbench default.
    seed:
        ``COCOTB_RANDOM_SEED``; ``None`` takes the environment's or draws one.
    testcase:
        Run only this cocotb test.
    env:
        Extra environment variables for the testbench.
    waves:
        Record FST waveforms; ``None`` follows ``WAVES``.
    objcache:
        Cache of the simulator run-time objects (:mod:`sim.objcache`); defaults to
        ``<root>/.objcache``.
    exported:
        Vectors of an exported model (:func:`sim.vectors.extract`); passed to the
        testbench's ``exported_vectors`` test when this configuration is compatible.

    Raises
    ------
    sim.runner.SimulationError
        When the build fails or any cocotb test fails.
    """
    if params.kind not in TESTBENCHES:
        raise ValueError(f"no testbench for PE kind {params.kind!r}; known: {sorted(TESTBENCHES)}")
    directory = Path(root) / name
    verilog = write_verilog(name, params, directory)
    start = time.perf_counter()
    runner.build(
        [verilog],
        toplevel=name,
        build_dir=directory,
        waves=waves,
        objcache_dir=Path(root) / ".objcache" if objcache is None else objcache,
    )
    build_seconds = time.perf_counter() - start
    test_env = {PARAMS_ENV: json.dumps(params.to_dict()), **(env or {})}
    if vectors is not None:
        test_env[VECTORS_ENV] = str(vectors)
    if exported is not None and exported.compatible(params):
        test_env[EXPORT_VECTORS_ENV] = str(exported.files[params.kind].resolve())
    result = runner.run(
        test_module=TESTBENCHES[params.kind],
        toplevel=name,
        build_dir=directory,
        env=test_env,
        seed=seed,
        testcase=testcase,
        waves=waves,
    )
    return SimRun(name=name, params=params, result=result, build_seconds=build_seconds)


def _select(kinds: Sequence[str] | None, names: Sequence[str] | None) -> dict[str, PEParams]:
    kinds = list(PE_CONFIGS) if not kinds else list(kinds)
    selected = {name: params for kind in kinds for name, params in PE_CONFIGS[kind].items()}
    if names:
        missing = sorted(set(names) - set(selected))
        if missing:
            known = ", ".join(sorted(selected))
            raise ValueError(f"no PE configuration named {missing[0]!r}; known: {known}")
        selected = {name: selected[name] for name in names}
    return selected


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim``: sweep PE configurations through Verilator + cocotb."""
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kind", action="append", choices=sorted(PE_CONFIGS), help="PE family (repeatable; default all)"
    )
    parser.add_argument(
        "--config",
        action="append",
        dest="names",
        metavar="NAME",
        help="configuration name from protocol.params.PE_CONFIGS (repeatable; default all)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT, help="build root (default build/sim)")
    parser.add_argument(
        "--vectors", type=int, default=10_000, help="random vectors per configuration (default 10000)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="COCOTB_RANDOM_SEED (default: the environment's, else random)"
    )
    parser.add_argument("--testcase", default=None, help="run only this cocotb test")
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        help="export directory of a trained model for the exported_vectors tests "
        "(default: $SIM_EXPORT_DIR, else build/export/hw-tiny-digits)",
    )
    args = parser.parse_args(argv)
    if args.vectors < 1:
        parser.error(f"--vectors must be positive, not {args.vectors}")
    try:
        selected = _select(args.kind, args.names)
    except ValueError as error:
        parser.error(str(error))

    seed = (
        args.seed
        if args.seed is not None
        else (
            int(os.environ["COCOTB_RANDOM_SEED"])
            if os.environ.get("COCOTB_RANDOM_SEED")
            else int.from_bytes(os.urandom(4), "little")
        )
    )
    print(
        f"[sim] {len(selected)} configuration(s), COCOTB_RANDOM_SEED={seed}, "
        f"{args.vectors} random vectors each, waves={'on' if runner.waves_requested() else 'off'}"
    )
    exported = None
    export_dir = find_export(args.export)
    if export_dir is None:
        print(
            "[sim] no exported model found: exported_vectors tests are skipped "
            "(run `make demo` or `make export`, or pass --export DIR)"
        )
    else:
        try:
            exported = extract(export_dir, args.out / "vectors")
        except VectorError as error:
            parser.error(str(error))
        for kind, line in exported.summary.items():
            print(f"[sim] exported vectors ({export_dir}) for {kind}: {line}")
    rows, failures = [], []
    for name, params in selected.items():
        try:
            run = simulate(
                name,
                params,
                root=args.out,
                vectors=args.vectors,
                seed=seed,
                testcase=args.testcase,
                exported=exported,
            )
        except runner.SimulationError as error:
            failures.append(name)
            rows.append(f"{name:24s} FAILED  {error}")
            continue
        skipped = f", skipped: {', '.join(run.result.skipped)}" if run.result.skipped else ""
        rows.append(
            f"{name:24s} passed  {run.result.tests - len(run.result.skipped)} test(s), build "
            f"{run.build_seconds:6.1f} s, run {run.result.seconds:6.1f} s{skipped}"
        )
    print(f"\n[sim] summary (COCOTB_RANDOM_SEED={seed})")
    print("\n".join(rows))
    if failures:
        print(f"[sim] {len(failures)} configuration(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
