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

__all__ = ["CoreRun", "CoreTimeout", "run_core", "run_programs"]


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


def run_programs(
    config: AcceleratorConfig,
    streams: Sequence[Sequence[int] | np.ndarray],
    *,
    max_cycles: int = 200_000,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    last_at: Sequence[int | None] | None = None,
) -> list[CoreRun]:
    """Run several programs one after the other on one core (one elaboration).

    Parameters
    ----------
    config:
        The configuration of the core.
    streams:
        Input words of each program; the last word carries TLAST unless ``last_at`` gives
        another index for that program (``-1``: none).
    max_cycles:
        Budget per program; :class:`CoreTimeout` when ``done`` has not risen by then.
    seed, valid_prob, ready_prob:
        Random idle cycles on the input / back-pressure on the output.
    """
    programs = [[int(w) for w in np.asarray(s, dtype=np.uint64).tolist()] for s in streams]
    lasts_at = list(last_at) if last_at is not None else [None] * len(programs)
    dut = AcceleratorCore(config)
    rng = random.Random(seed)
    runs: list[CoreRun] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx) -> None:
        for words, last_index in zip(programs, lasts_at, strict=True):
            last_index = len(words) - 1 if last_index is None else last_index
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            out: list[int] = []
            lasts: list[int] = []
            i = 0
            for _ in range(max_cycles):
                # Input: offer the next word (a pending offer stays until taken).
                port_in = dut.words_in
                offer = i < len(words) and (ctx.get(port_in.valid) or rng.random() < valid_prob)
                ctx.set(port_in.valid, offer)
                if i < len(words):
                    ctx.set(port_in.payload.data, words[i])
                    ctx.set(port_in.payload.last, int(i == last_index))
                ready = rng.random() < ready_prob
                ctx.set(dut.words_out.ready, ready)
                _, _, taken, valid, data, last, done = await ctx.tick().sample(
                    port_in.ready,
                    dut.words_out.valid,
                    dut.words_out.payload.data,
                    dut.words_out.payload.last,
                    dut.done,
                )
                if offer and taken:
                    i += 1
                    ctx.set(port_in.valid, 0)
                if valid and ready:
                    if last:
                        lasts.append(len(out))
                    out.append(data)
                if done:
                    break
            else:
                raise CoreTimeout(
                    f"done did not rise within {max_cycles} cycles: {ctx.get(dut.commands)} "
                    f"command(s) completed, {len(out)} output words"
                )
            ctx.set(dut.words_in.valid, 0)
            commands = ctx.get(dut.commands)
            profile = []
            for index in range(min(commands, config.profile_depth)):
                ctx.set(dut.profile_addr, index)
                await ctx.tick()
                profile.append(ctx.get(dut.profile_data))
            runs.append(
                CoreRun(
                    words=np.asarray(out, dtype=np.uint64),
                    lasts=lasts,
                    cycles=ctx.get(dut.cycles),
                    error=ctx.get(dut.error),
                    detail=ctx.get(dut.detail),
                    error_command=ctx.get(dut.error_command),
                    commands=commands,
                    profile=profile,
                )
            )

    sim.add_testbench(bench)
    sim.run()
    return runs


def run_core(
    config: AcceleratorConfig,
    stream: Sequence[int] | np.ndarray,
    *,
    last_at: int | None = None,
    **kwargs: object,
) -> CoreRun:
    """Run one program (see :func:`run_programs`)."""
    return run_programs(config, [stream], last_at=[last_at], **kwargs)[0]  # type: ignore[arg-type]
