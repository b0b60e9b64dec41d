"""cocotb testbench of the accelerator top: runs prepared programs through its AXI ports.

Started by :mod:`hw.accel.verilator` inside the simulator. It reads a job file (``.npz``,
path in :data:`JOB_ENV`) holding the input streams of several program runs, and for
each run: writes ``CONTROL.START`` over AXI4-Lite (cocotbext-axi ``AxiLiteMaster``),
sends the stream as one AXI4-Stream packet (``AxiStreamSource``, TLAST on the last
word), polls ``STATUS.DONE``, collects the output packets (``AxiStreamSink``) and reads
the cycle counter, error registers and the per-command profile. The results go to the
``.npz`` named by :data:`RESULT_ENV`; all checking against the golden model happens
outside, where the program can decode them.
"""

from __future__ import annotations

import logging
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from hw.accel import regmap

__all__ = ["JOB_ENV", "RESULT_ENV", "POLL_CYCLES"]

#: Environment variable: path of the job ``.npz`` (``streams``, ``offsets``, ``config_hash``).
JOB_ENV = "ACCEL_JOB"
#: Environment variable: path the results ``.npz`` is written to.
RESULT_ENV = "ACCEL_RESULT"
#: Cycles between two ``STATUS`` polls.
POLL_CYCLES = 256
#: Clock period of the simulation (100 MHz).
CLOCK_NS = 10


async def _read(axil: AxiLiteMaster, name: str) -> int:
    return await axil.read_dword(regmap.offset(name))


@cocotb.test()
async def run_programs(dut) -> None:
    """Run every stream of the job file; fail on a register mismatch or a hung core."""
    job = np.load(os.environ[JOB_ENV])
    streams, offsets = job["streams"], job["offsets"]
    max_cycles = int(job["max_cycles"])
    cocotb.start_soon(Clock(dut.aclk, CLOCK_NS, unit="ns").start())
    axil = AxiLiteMaster(
        AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn, reset_active_level=False
    )
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn, reset_active_level=False
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn, reset_active_level=False
    )
    for prefix in ("s_axi", "s_axis", "m_axis"):
        # Per-transaction INFO logs (whole frames included) cost more than the simulation.
        logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 4)
    dut.aresetn.value = 1
    await RisingEdge(dut.aclk)

    assert await _read(axil, "ID") == regmap.ACCEL_ID, "ID register mismatch"
    assert await _read(axil, "CONFIG_HASH") == int(job["config_hash"]), (
        "CONFIG_HASH differs from the program's configuration"
    )
    profile_depth = await _read(axil, "HW_PROFILE_DEPTH")
    status_done = 1 << regmap.field_mask("STATUS", "DONE")[0]
    start = 1 << regmap.field_mask("CONTROL", "START")[0]

    outputs, out_offsets, cycles, errors, commands, profiles, walls = [], [0], [], [], [], [], []
    for run in range(len(offsets) - 1):
        stream = streams[offsets[run] : offsets[run + 1]].astype("<u8")
        began = time.perf_counter()
        await axil.write_dword(regmap.offset("CONTROL"), start)
        await source.send(AxiStreamFrame(stream.tobytes()))
        waited = 0
        while not (await _read(axil, "STATUS")) & status_done:
            # A timer wakes Python once per poll; ClockCycles would wake it every cycle.
            await Timer(POLL_CYCLES * CLOCK_NS, unit="ns")
            waited += POLL_CYCLES
            assert waited < max_cycles, f"run {run}: STATUS.DONE not set within {max_cycles} cycles"
        words = []
        while not sink.empty():
            frame = sink.recv_nowait()
            words.append(np.frombuffer(bytes(frame.tdata), dtype="<u8"))
        out = np.concatenate(words) if words else np.zeros(0, dtype="<u8")
        outputs.append(out)
        out_offsets.append(out_offsets[-1] + out.size)
        low = await _read(axil, "CYCLES_LO")
        cycles.append(low | (await _read(axil, "CYCLES_HI")) << 32)
        errors.append(await _read(axil, "ERROR"))
        count = await _read(axil, "COMMANDS")
        commands.append(count)
        profile = [
            await axil.read_dword(regmap.PROFILE_BASE + 4 * i) for i in range(min(count, profile_depth))
        ]
        profiles.append(profile + [0] * (profile_depth - len(profile)))
        walls.append(time.perf_counter() - began)
        dut._log.info(
            f"run {run}: {cycles[-1]} cycles, {out.size} output words, error {errors[-1]:#x}, "
            f"{walls[-1]:.2f} s"
        )
    np.savez(
        os.environ[RESULT_ENV],
        outputs=np.concatenate(outputs) if outputs else np.zeros(0, dtype="<u8"),
        out_offsets=np.asarray(out_offsets),
        cycles=np.asarray(cycles, dtype=np.int64),
        errors=np.asarray(errors),
        commands=np.asarray(commands),
        profiles=np.asarray(profiles, dtype=np.int64).reshape(len(profiles), profile_depth),
        walls=np.asarray(walls),
    )
