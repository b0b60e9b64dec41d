"""Run programs on :class:`hw.accel.core.AcceleratorCore` in Amaranth's simulator.

The harness pulses ``start``, offers the input stream words (optionally with random
idle cycles), takes output words (optionally with random back-pressure) and, once
``done`` rises, reads the status outputs and the profile. It is for small unit tests:
Amaranth's simulator runs a few thousand cycles per second on this design, the
Verilator flow (``sim/``) runs whole models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from hw.accel.config import AcceleratorConfig
from hw.accel.core import AcceleratorCore

__all__ = ["CoreRun", "CoreTimeout", "run_core"]


class CoreTimeout(AssertionError):
    """``done`` did not rise within the cycle budget."""


@dataclass
class CoreRun:
    """What a program run produced.

    Attributes
    ----------
    words:
        Output stream words (``uint64``).
    lasts:
        Indices of the output words that carried ``last``.
    cycles:
        The core's cycle counter at the end.
    error, detail, error_command, commands:
        The core's status outputs.
    profile:
        Per-command cycle counts (``commands`` entries, at most ``profile_depth``).
    """

    words: np.ndarray
    lasts: list[int]
    cycles: int
    error: int
    detail: int
    error_command: int
    commands: int
    profile: list[int]


def run_core(config: AcceleratorConfig, stream: Sequence[int] | np.ndarray, *, max_cycles: int = 200_000,
             seed: int = 0, valid_prob: float = 1.0, ready_prob: float = 1.0, last_at: int | None = None,
             core: AcceleratorCore | None = None) -> CoreRun:
    """Run one program.

    Parameters
    ----------
    config:
        The configuration (used to build the core unless ``core`` is given).
    stream:
        Input words; the last one carries TLAST unless ``last_at`` picks another index
        (``-1``: none).
    max_cycles:
        Budget; :class:`CoreTimeout` when ``done`` has not risen by then.
    seed, valid_prob, ready_prob:
        Random idle cycles on the input / back-pressure on the output.
    """
    words = [int(w) for w in np.asarray(stream, dtype=np.uint64).tolist()]
    last_index = len(words) - 1 if last_at is None else last_at
    dut = core if core is not None else AcceleratorCore(config)
    rng = random.Random(seed)
    out: list[int] = []
    lasts: list[int] = []
    result: dict[str, object] = {}
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def source(ctx) -> None:
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        i = 0
        port = dut.words_in
        while i < len(words):
            offer = ctx.get(port.valid) or rng.random() < valid_prob
            ctx.set(port.valid, offer)
            ctx.set(port.payload.data, words[i])
            ctx.set(port.payload.last, int(i == last_index))
            _, _, ready, done = await ctx.tick().sample(port.ready, dut.done)
            if offer and ready:
                i += 1
                ctx.set(port.valid, 0)
            if done:
                break
        ctx.set(port.valid, 0)

    async def sink(ctx) -> None:
        port = dut.words_out
        for cycle in range(max_cycles):
            ready = rng.random() < ready_prob
            ctx.set(port.ready, ready)
            _, _, valid, data, last, done = await ctx.tick().sample(
                port.valid, port.payload.data, port.payload.last, dut.done)
            if valid and ready:
                if last:
                    lasts.append(len(out))
                out.append(data)
            if done and cycle > 2:
                break
        else:
            raise CoreTimeout(f"done did not rise within {max_cycles} cycles: {ctx.get(dut.commands)} "
                              f"command(s) completed, {len(out)} output words")
        commands = ctx.get(dut.commands)
        profile = []
        for i in range(min(commands, config.profile_depth)):
            ctx.set(dut.profile_addr, i)
            await ctx.tick()
            profile.append(ctx.get(dut.profile_data))
        result.update(cycles=ctx.get(dut.cycles), error=ctx.get(dut.error), detail=ctx.get(dut.detail),
                      error_command=ctx.get(dut.error_command), commands=commands, profile=profile)

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return CoreRun(words=np.asarray(out, dtype=np.uint64), lasts=lasts, **result)  # type: ignore[arg-type]
