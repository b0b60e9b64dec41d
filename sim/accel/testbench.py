"""Run programs on :class:`hw.accel.core.AcceleratorCore` in Amaranth's simulator.

The harness pulses ``start``, offers the input stream words (optionally with random
idle cycles), takes output words (optionally with random back-pressure) and, once
``done`` rises, reads the status outputs and the profile. With a ``canary`` it also fills
the activation memory with that word before each program, logs every activation write
with the index of the command that made it, and reads the memory back afterwards, so
:func:`write_problems` can check that every command wrote its own output regions and
nothing else. It is for small unit tests: Amaranth's simulator runs a few thousand
cycles per second on this design, the Verilator flow (``sim/``) runs whole models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Fragment, MemoryData
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.accel.banked import BankedMemory
from hw.accel.core import AcceleratorCore
from hw.accel.packed import PackedMemory
from protocol.config import AcceleratorConfig
from protocol.descriptors import Descriptor

__all__ = ["CoreRun", "CoreTimeout", "canary_word", "run_core", "run_programs", "write_problems"]


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
    memory:
        With a canary: the activation memory after the run (``amem_depth`` words).
    writes:
        With a canary: ``[n, 2]`` ``(command index, address)`` of every activation-memory
        write, in order.
    """

    words: np.ndarray
    lasts: list[int]
    cycles: int
    error: int
    detail: int
    error_command: int
    commands: int
    profile: list[int]
    memory: np.ndarray | None = None
    writes: np.ndarray | None = None


def canary_word(config: AcceleratorConfig) -> int:
    """A fill word for the activation memory: alternating bits with the top time step set.

    The spike words of a model with fewer time steps than the configuration have their
    upper steps masked to 0, so they cannot look like this canary (the write log of
    :func:`run_programs` catches the rest)."""
    steps = config.timesteps
    return sum(1 << t for t in range(steps - 1, -1, -2))


def _activation_memory(top: Fragment) -> tuple[BankedMemory, list[MemoryData]]:
    """The core's activation memory and the data of its banks, found in the elaborated design
    (:class:`~hw.accel.banked.BankedMemory` keeps word ``a`` in bank ``a mod banks``, row
    ``a // banks``; a packed bank, :class:`~hw.accel.packed.PackedMemory`, its rows)."""
    (amem,) = [sub for sub, name, _ in top.subfragments if name == "amem"]
    banked = amem.origins[0]
    banks = sorted(
        (
            name,
            sub.subfragments[0][0].origins[0] if isinstance(sub.origins[0], PackedMemory) else sub.origins[0],
        )
        for sub, name, _ in amem.subfragments
    )
    if not isinstance(banked, BankedMemory) or not all(isinstance(m, Memory) for _, m in banks):
        raise TypeError("the core's activation memory is not a BankedMemory of lib.memory banks")
    return banked, [memory.data for _, memory in banks]


def run_programs(
    config: AcceleratorConfig,
    streams: Sequence[Sequence[int] | np.ndarray],
    *,
    max_cycles: int = 200_000,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    last_at: Sequence[int | None] | None = None,
    canary: int | None = None,
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
    canary:
        Fill the activation memory with this word before each program; the runs then carry
        ``memory`` and ``writes`` (see :class:`CoreRun` and :func:`write_problems`).
    """
    programs = [[int(w) for w in np.asarray(s, dtype=np.uint64).tolist()] for s in streams]
    lasts_at = list(last_at) if last_at is not None else [None] * len(programs)
    dut = AcceleratorCore(config)
    rng = random.Random(seed)
    runs: list[CoreRun] = []
    # Elaborated here so the bench can reach the activation memory inside the core.
    design = Fragment.get(dut, None)
    amem, banks = _activation_memory(design)
    # A packed bank row holds `packed` words, lane i at bits [i T, (i + 1) T).
    packed, steps = config.amem_words_per_row, config.timesteps
    # The two-bank memory may also write word wr_addr + 1 in the same cycle (wr_next_en).
    pairs = (amem.wr_next_en,) if "wr_next_en" in amem.signature.members else ()
    probes = (amem.wr_en, amem.wr_addr, dut.commands, *pairs) if canary is not None else ()
    sim = Simulator(design)
    sim.add_clock(1e-8)

    async def bench(ctx) -> None:
        for words, last_index in zip(programs, lasts_at, strict=True):
            last_index = len(words) - 1 if last_index is None else last_index
            writes: list[tuple[int, int]] = []
            if canary is not None:
                for bank in banks:
                    for row in range(bank.depth):
                        ctx.set(bank[row], sum(canary << (lane * steps) for lane in range(packed)))
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
                _, _, taken, valid, data, last, done, *probed = await ctx.tick().sample(
                    port_in.ready,
                    dut.words_out.valid,
                    dut.words_out.payload.data,
                    dut.words_out.payload.last,
                    dut.done,
                    *probes,
                )
                if probed and probed[0]:
                    writes.append((probed[2], probed[1]))
                    if pairs and probed[3]:
                        writes.append((probed[2], probed[1] + 1))
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
            memory = None
            if canary is not None:
                rows = [
                    [
                        (ctx.get(bank[row]) >> (lane * steps)) & ((1 << steps) - 1)
                        for row in range(bank.depth)
                        for lane in range(packed)
                    ]
                    for bank in banks
                ]
                memory = np.asarray(rows, dtype=np.int64).T.reshape(-1)[: config.amem_depth]
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
                    memory=memory,
                    writes=np.asarray(writes, dtype=np.int64).reshape(-1, 2) if probes else None,
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


def write_problems(
    descriptors: Sequence[Descriptor], run: CoreRun, canary: int, *, limit: int = 8
) -> list[str]:
    """How a program's activation writes strayed from its commands' outputs (empty: they did not).

    A command may write only its ``dst`` regions (:meth:`Descriptor.regions`): every write
    logged during command ``k`` must fall in command ``k``'s, after the run every word
    outside all of them must still hold the ``canary`` the memory was filled with, and
    every word of a command's ``dst`` must have been written by that command (a skipped
    word would keep a stale value that may happen to be right).

    Parameters
    ----------
    descriptors:
        The program's descriptors, in command order.
    run:
        A run of that program made with ``canary`` (:func:`run_programs`).
    canary:
        The word the activation memory was filled with before the run.
    limit:
        Problems reported at most (the rest are counted).
    """
    if run.memory is None or run.writes is None:
        raise ValueError("the run was made without a canary: it has no memory image or write log")
    spans = [
        [(start, start + size) for role, start, size in d.regions() if role == "dst"] for d in descriptors
    ]
    problems: list[str] = []
    written: list[set[int]] = [set() for _ in descriptors]
    for command, address in run.writes.tolist():
        if command >= len(descriptors):
            problems.append(f"word {address} was written after the last command")
        elif not any(lo <= address < hi for lo, hi in spans[command]):
            name = descriptors[command].opcode.name
            problems.append(
                f"command {command} ({name}) wrote word {address} outside its dst {spans[command]}"
            )
        else:
            written[command].add(address)
    outside = np.ones(run.memory.size, dtype=bool)
    for command, command_spans in enumerate(spans):
        for lo, hi in command_spans:
            outside[lo:hi] = False
            skipped = sorted(set(range(lo, hi)) - written[command])
            if skipped and command < run.commands:
                name = descriptors[command].opcode.name
                problems.append(
                    f"command {command} ({name}) left {len(skipped)} word(s) of its dst [{lo}, {hi}) "
                    f"unwritten, the first {skipped[0]}"
                )
    for address in np.flatnonzero(outside & (run.memory != canary)).tolist():
        problems.append(f"word {address}, in no command's dst, holds {run.memory[address]}, not the canary")
    if len(problems) > limit:
        problems[limit:] = [f"... and {len(problems) - limit} more"]
    return problems
