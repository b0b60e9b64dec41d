# amaranth: UnusedElaboratable=no
"""The packed activation banks (:mod:`hw.accel.packed`) equal a list of words, cycle by cycle.

Random interleaved reads and writes (a read and a write in the same cycle, often of the same
row) on the RTL and on a Python list: every cycle's read data equals the list's word as it
was before that cycle's write, and holds while the read is not enabled, as the one-word-per-row
memory it replaces (:class:`hw.accel.banked.BankedMemory`'s contract).
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.hdl import Fragment
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.accel.banked import BankedMemory
from hw.accel.packed import PackedMemory
from protocol.config import ACCEL_CONFIGS, ConfigError

WIDTH = 16


def _run(dut: object, steps: object) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(steps)
    sim.run()


@pytest.mark.parametrize("words_per_row", [1, 2, 4])
def test_packed_memory_equals_a_list(words_per_row: int) -> None:
    depth = 32
    dut = PackedMemory(width=WIDTH, depth=depth, words_per_row=words_per_row)
    rng = random.Random(words_per_row)
    model = [0] * depth
    checked = []

    async def steps(ctx: object) -> None:
        expected = 0
        for _ in range(600):
            rd_en, wr_en = rng.random() < 0.6, rng.random() < 0.6
            rd_addr, wr_addr = rng.randrange(depth), rng.randrange(depth)
            if rng.random() < 0.3:  # the same row, another or the same word
                wr_addr = rd_addr // words_per_row * words_per_row + rng.randrange(words_per_row)
            data = rng.randrange(1 << WIDTH)
            ctx.set(dut.rd.addr, rd_addr)
            ctx.set(dut.rd.en, rd_en)
            ctx.set(dut.wr.addr, wr_addr)
            ctx.set(dut.wr.en, wr_en)
            ctx.set(dut.wr.data, data)
            await ctx.tick()
            if rd_en:
                expected = model[rd_addr]
            if wr_en:
                model[wr_addr] = data
            assert ctx.get(dut.rd.data) == expected
            checked.append(rd_en)

    _run(dut, steps)
    assert sum(checked) > 300


@pytest.mark.parametrize(("banks", "split"), [(1, False), (2, False), (2, True)])
def test_packed_banks_equal_a_list(banks: int, split: bool) -> None:
    """BankedMemory with four words a row: the pair reads and zero-skip split reads of the core."""
    depth = 64
    dut = BankedMemory(width=WIDTH, depth=depth, banks=banks, split=split, words_per_row=4)
    rng = random.Random(banks + 2 * split)
    model = [rng.randrange(1 << WIDTH) for _ in range(depth)]
    reads = 0

    async def steps(ctx: object) -> None:
        nonlocal reads
        # Fill through the write port first (the memory starts at zero).
        for addr, word in enumerate(model):
            ctx.set(dut.wr_addr, addr)
            ctx.set(dut.wr_data, word)
            ctx.set(dut.wr_en, 1)
            await ctx.tick()
        expected = (0, 0)
        for _ in range(600):
            rd_en, wr_en = rng.random() < 0.6, rng.random() < 0.5
            rd_addr, wr_addr = rng.randrange(depth - 1), rng.randrange(depth)
            odd_row = rng.randrange(depth // 2)
            take_split = split and rng.random() < 0.5
            if take_split:
                rd_addr &= ~1
            data = rng.randrange(1 << WIDTH)
            ctx.set(dut.rd_addr, rd_addr)
            ctx.set(dut.rd_en, rd_en)
            if split:
                ctx.set(dut.rd_split, take_split)
                ctx.set(dut.rd_odd_row, odd_row)
            ctx.set(dut.wr_addr, wr_addr)
            ctx.set(dut.wr_en, wr_en)
            ctx.set(dut.wr_data, data)
            await ctx.tick()
            if rd_en:
                reads += 1
                following = 2 * odd_row + 1 if take_split else rd_addr + 1
                expected = (model[rd_addr], model[following])
            if wr_en:
                model[wr_addr] = data
            assert ctx.get(dut.rd_data) == expected[0]
            if banks == 2:
                assert ctx.get(dut.rd_next) == expected[1]

    _run(dut, steps)
    assert reads > 300


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(width=16, depth=32, words_per_row=3),
        dict(width=16, depth=30, words_per_row=4),
        dict(width=0, depth=32, words_per_row=2),
    ],
)
def test_packed_memory_checks_its_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PackedMemory(**kwargs)


def test_banked_memory_refuses_banks_that_do_not_pack() -> None:
    with pytest.raises(ValueError, match="words_per_row"):
        BankedMemory(width=16, depth=36, banks=2, words_per_row=4)


@pytest.mark.parametrize("words_per_row", [0, 3, 5, 8])
def test_config_refuses_other_packings(words_per_row: int) -> None:
    with pytest.raises(ConfigError, match="amem_words_per_row"):
        dataclasses.replace(ACCEL_CONFIGS["sim"], amem_words_per_row=words_per_row)


def test_packing_is_part_of_the_config_hash() -> None:
    sim = ACCEL_CONFIGS["sim"]
    assert dataclasses.replace(sim, amem_words_per_row=4).config_hash != sim.config_hash
    with pytest.raises(ConfigError, match="divide"):
        dataclasses.replace(sim, amem_depth=(1 << 15) + 4, amem_words_per_row=4)


@pytest.mark.parametrize(
    ("words_per_row", "ram_style", "expected"), [(4, None, "ultra"), (1, None, None), (2, "block", "block")]
)
def test_packed_rows_ask_for_uram(words_per_row: int, ram_style: str | None, expected: str | None) -> None:
    """Packing is for 72-bit URAM rows: the row memory says so to Vivado and Yosys."""
    dut = PackedMemory(width=WIDTH, depth=32, words_per_row=words_per_row, ram_style=ram_style)
    (rows,) = [sub.origins[0] for sub, _, _ in Fragment.get(dut, None).subfragments]
    assert isinstance(rows, Memory) and rows.attrs.get("ram_style") == expected
