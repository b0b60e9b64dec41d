"""A fake Zynq for the host-driver tests: DDR buffers with a CPU cache, an AXI DMA, the accelerator.

:class:`FakeZynq` implements the device side of what ``pynq`` talks to:
``allocate``, ``flush``, ``invalidate`` (the buffer's device copy is separate from the
CPU's array, so a missing flush or invalidate corrupts data as on a board) and
``read_registers`` / ``write_registers`` for two register windows:

* the AXI DMA in simple mode (PG021 registers: DMACR run/reset, DMASR halted/idle and
  error bits, SA/DA, LENGTH; the receive LENGTH holds the bytes written after TLAST);
* the accelerator (:mod:`protocol.regmap`), whose core runs the received program on
  :class:`protocol.emulator.Emulator` and splits the output into packets the way the
  program's STORE and HEAD commands do.

:func:`make_backend` binds a :class:`host.backends.pynq_backend.PynqBackend` to it in two
ways: ``"pynq"`` uses the real ``pynq`` classes (a ``pynq.Device`` subclass, ``DefaultIP``,
``pynq.lib.dma.DMA`` and ``pynq.allocate``: the pattern of PYNQ's own tests, with
``"device"`` in the IP description dicts) and runs only where ``pynq`` is importable;
``"thin"`` uses small stand-ins with the same methods and runs everywhere.
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from collections import deque
from typing import Any

import numpy as np

from protocol import regmap
from protocol.config import AcceleratorConfig
from protocol.descriptors import Opcode
from protocol.emulator import Emulator, EmulatorError
from protocol.program import stream_words_for

ACCEL_BASE = 0x43C0_0000
DMA_BASE = 0x4040_0000
WINDOW = 0x1_0000
_REG = {reg.name: reg.offset for reg in regmap.REGISTERS}

try:  # the optional board extra; the "pynq" flavour of the tests needs it
    import pynq
    from pynq.buffer import PynqBuffer
    from pynq.lib.dma import DMA as PynqDMA
except ImportError:
    pynq = None


# ---------------------------------------------------------------------- the accelerator
class FaultyEmulator(Emulator):
    """The emulator with every output spike of the ``corrupt_conv``-th CONV command inverted."""

    def __init__(self, config: AcceleratorConfig, corrupt_conv: int | None) -> None:
        super().__init__(config)
        self.corrupt_conv = corrupt_conv

    def _op_conv(self, d: Any, words: Any, out: list[int]) -> None:
        super()._op_conv(d, words, out)
        convs = sum(e.opcode == Opcode.CONV for e in self.executed)
        if self.corrupt_conv is not None and convs == self.corrupt_conv + 1:
            count = d.out_h * d.out_w * d.out_c
            mask = np.uint64((1 << d.timesteps) - 1)
            self.amem[d.dst : d.dst + count] ^= mask


class FakeCore:
    """Register file and behaviour of the accelerator; ``mode`` injects faults.

    ``"normal"``; ``"hang"`` (takes the stream, never signals DONE); ``"stall"`` (never
    takes the stream); ``"long_packet"`` / ``"short_packet"`` (the last packet has one word
    more / fewer than the program says); ``"late_fault"`` (every packet arrives and both DMA
    channels go idle, then DONE comes with the OVERFLOW flag of the last command, as an
    overflow the core only notices at the end would).
    ``corrupt_conv=k`` inverts the spikes the k-th CONV command writes (a wrong layer).
    """

    def __init__(
        self,
        config: AcceleratorConfig,
        *,
        mode: str = "normal",
        config_hash: int | None = None,
        ident: int = regmap.ACCEL_ID,
        corrupt_conv: int | None = None,
    ) -> None:
        self.cfg, self.mode = config, mode
        self.config_hash = config.config_hash if config_hash is None else config_hash
        self.ident = ident
        self.emulator = FaultyEmulator(config, corrupt_conv)
        self.starts = 0
        self.soft_resets = 0
        self._clear()

    def _clear(self) -> None:
        self.busy = self.done = False
        self.error = self.detail = self.error_command = self.commands = self.cycles = 0
        self.packets: deque[np.ndarray] = deque()

    def read(self, offset: int) -> int:
        cfg = self.cfg
        major, minor = regmap.VERSION
        values = {
            "ID": self.ident,
            "VERSION": major << 16 | minor,
            "CONFIG_HASH": self.config_hash,
            "STATUS": int(self.busy) | int(self.done) << 1 | int(bool(self.error)) << 2,
            "ERROR": self.error,
            "DETAIL": self.detail,
            "ERROR_COMMAND": self.error_command,
            "COMMANDS": self.commands,
            "CYCLES_LO": self.cycles & 0xFFFF_FFFF,
            "CYCLES_HI": self.cycles >> 32,
            "HW_TIMESTEPS": cfg.timesteps,
            "HW_LANES": cfg.lanes | cfg.lif_lanes << 16,
            "HW_AMEM_DEPTH": cfg.amem_depth,
            "HW_WMEM_DEPTH": cfg.wmem_depth,
            "HW_ATTENTION": cfg.head_dim | cfg.max_group << 8,
            "HW_PROFILE_DEPTH": cfg.profile_depth,
        }
        for name, value in values.items():
            if _REG[name] == offset:
                return value
        if regmap.PROFILE_BASE <= offset < regmap.PROFILE_BASE + 4 * cfg.profile_depth:
            index = (offset - regmap.PROFILE_BASE) // 4
            if index >= self.commands:
                return 0
            # As the core: command c's count lands in entry c mod depth, the last writer wins.
            return 100 + index + cfg.profile_depth * ((self.commands - 1 - index) // cfg.profile_depth)
        return 0

    def write(self, offset: int, value: int) -> None:
        if offset != _REG["CONTROL"]:
            return
        if value & 2:  # SOFT_RESET
            self.soft_resets += 1
            self._clear()
        if value & 1:  # START
            self.starts += 1
            self._clear()
            self.busy = True

    def accepts_input(self) -> bool:
        return self.busy and self.mode != "stall"

    def consume(self, words: np.ndarray) -> None:
        """Run one program (the whole MM2S transfer)."""
        if self.mode == "hang":
            return
        try:
            out = self.emulator.run(words)
        except EmulatorError as exc:
            text = str(exc)
            self.error = int(regmap.ErrorFlag.TRUNCATED if "ended" in text else regmap.ErrorFlag.DESCRIPTOR)
            self.detail = int(regmap.DescriptorFault.CHECKSUM) if "checksum" in text else 0
            self.error_command = len(self.emulator.executed)
            self.busy, self.done = False, True
            return
        offset = 0
        for desc in self.emulator.executed:
            size = {
                Opcode.STORE: stream_words_for(desc.count, self.cfg.timesteps),
                Opcode.HEAD: desc.classes,
            }.get(desc.opcode, 0)
            if size:
                self.packets.append(out[offset : offset + size])
                offset += size
        if self.mode == "long_packet":
            self.packets[-1] = np.append(self.packets[-1], np.uint64(0))
        if self.mode == "short_packet":
            self.packets[-1] = self.packets[-1][:-1]
        if self.mode == "late_fault":
            self.error = int(regmap.ErrorFlag.OVERFLOW)
            self.error_command = len(self.emulator.executed) - 1
        self.commands = len(self.emulator.executed)
        self.cycles = int(words.size) + 1000 * self.commands
        self.busy, self.done = False, True


# ---------------------------------------------------------------------- the DMA
class FakeChannel:
    """One AXI DMA channel's registers (``base`` = 0x00 for MM2S, 0x30 for S2MM)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.run = False
        self.idle = False  # as on the hardware: not idle until the first transfer completes
        self.errors = 0
        self.address = 0
        self.length = 0
        self.active = False

    def status(self) -> int:
        return int(not self.run) | int(self.idle) << 1 | self.errors


class FakeZynq:
    """Memory, cache, AXI DMA and accelerator of a Zynq (see the module docstring)."""

    def __init__(self, config: AcceleratorConfig, **core: Any) -> None:
        self.core = FakeCore(config, **core)
        self.mm2s, self.s2mm = FakeChannel(), FakeChannel()
        self.memory: dict[int, tuple[int, np.ndarray, bytearray]] = {}  # bo -> (address, cpu array, DDR)
        self._next_bo = itertools.count(1)
        self._next_address = 0x1000_0000
        self.allocations = self.flushes = self.invalidates = 0
        self.sent: list[np.ndarray] = []

    # -------------------------------------------------------------- memory
    def allocate(self, shape: Any, dtype: Any, **kwargs: Any) -> Any:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        bo, address = next(self._next_bo), self._next_address
        self._next_address += (nbytes + 0xFFF) & ~0xFFF
        cpu = bytearray(nbytes)
        if pynq is not None and isinstance(self, pynq.Device):
            array = PynqBuffer(
                shape, dtype, buffer=cpu, device=self, device_address=address, bo=bo, coherent=False
            )
        else:
            array = ThinBuffer(shape, dtype, buffer=cpu)
            array.device, array.device_address, array.bo = self, address, bo
        self.memory[bo] = (address, np.frombuffer(cpu, dtype=np.uint8), bytearray(nbytes))
        self.allocations += 1
        return array

    def flush(self, bo: int, offset: int, vaddr: int, nbytes: int) -> None:
        _, cpu, ddr = self.memory[bo]
        ddr[offset : offset + nbytes] = cpu[offset : offset + nbytes].tobytes()
        self.flushes += 1

    def invalidate(self, bo: int, offset: int, vaddr: int, nbytes: int) -> None:
        _, cpu, ddr = self.memory[bo]
        cpu[offset : offset + nbytes] = np.frombuffer(bytes(ddr[offset : offset + nbytes]), dtype=np.uint8)
        self.invalidates += 1

    def _ddr(self, address: int, nbytes: int) -> tuple[bytearray, int]:
        for base, _, ddr in self.memory.values():
            if base <= address and address + nbytes <= base + len(ddr):
                return ddr, address - base
        raise AssertionError(f"DMA access [{address:#x}, +{nbytes}) outside every allocated buffer")

    # -------------------------------------------------------------- registers
    def read_registers(self, address: int, length: int) -> bytes:
        self._step()
        return struct.pack("<I", self._read(address))

    def write_registers(self, address: int, data: bytes) -> None:
        self._write(address, struct.unpack("<I", bytes(data[:4]))[0])
        self._step()

    def _read(self, address: int) -> int:
        if ACCEL_BASE <= address < ACCEL_BASE + WINDOW:
            return self.core.read(address - ACCEL_BASE)
        offset = address - DMA_BASE
        channel, register = (self.mm2s, offset) if offset < 0x30 else (self.s2mm, offset - 0x30)
        if register == 0x00:
            return int(channel.run)
        if register == 0x04:
            return channel.status()
        if register == 0x28:
            return channel.length
        return 0

    def _write(self, address: int, value: int) -> None:
        if ACCEL_BASE <= address < ACCEL_BASE + WINDOW:
            self.core.write(address - ACCEL_BASE, value)
            return
        offset = address - DMA_BASE
        channel, register = (self.mm2s, offset) if offset < 0x30 else (self.s2mm, offset - 0x30)
        if register == 0x00:
            if value & 4:  # reset: both channels, self-clearing
                self.mm2s.reset()
                self.s2mm.reset()
            else:
                channel.run = bool(value & 1)
        elif register == 0x18:
            channel.address = value
        elif register == 0x28 and channel.run:
            channel.length, channel.active, channel.idle = value, True, False
            if value == 0:
                channel.errors |= 1 << 4

    def _step(self) -> None:
        """Let the hardware make progress (called on every register access)."""
        mm2s, s2mm, core = self.mm2s, self.s2mm, self.core
        if mm2s.active and core.accepts_input():
            ddr, offset = self._ddr(mm2s.address, mm2s.length)
            words = np.frombuffer(bytes(ddr[offset : offset + mm2s.length]), dtype="<u8").astype(np.uint64)
            self.sent.append(words)
            mm2s.active, mm2s.idle = False, True
            core.consume(words)
        if s2mm.active and core.packets:
            packet = core.packets.popleft()
            nbytes = packet.size * 8
            if nbytes > s2mm.length:
                s2mm.errors |= 1 << 4  # DMAIntErr: the packet did not end within the transfer
                s2mm.run, s2mm.active = False, False
                return
            ddr, offset = self._ddr(s2mm.address, nbytes)
            ddr[offset : offset + nbytes] = packet.astype("<u8").tobytes()
            s2mm.length, s2mm.active, s2mm.idle = nbytes, False, True


# ---------------------------------------------------------------------- thin stand-ins for pynq
class ThinBuffer(np.ndarray):
    """What ``pynq.allocate`` returns, reduced to what the backend uses."""

    device: Any = None
    device_address = 0
    bo = 0

    @property
    def physical_address(self) -> int:
        return self.device_address

    def flush(self) -> None:
        self.device.flush(self.bo, 0, 0, self.nbytes)

    def invalidate(self) -> None:
        self.device.invalidate(self.bo, 0, 0, self.nbytes)

    def freebuffer(self) -> None:
        pass


class ThinMMIO:
    def __init__(self, device: FakeZynq, base: int) -> None:
        self.device, self.base = device, base

    def read(self, offset: int = 0) -> int:
        return struct.unpack("<I", self.device.read_registers(self.base + offset, 4))[0]

    def write(self, offset: int, value: int) -> None:
        self.device.write_registers(self.base + offset, struct.pack("<I", value))


class ThinChannel:
    """The part of ``pynq.lib.dma._SDMAChannel`` the backend uses, over the same registers."""

    def __init__(self, mmio: ThinMMIO, offset: int) -> None:
        self.mmio, self.offset = mmio, offset
        self.start()

    def start(self) -> None:
        self.mmio.write(self.offset, 1)

    def transfer(self, array: ThinBuffer, start: int = 0, nbytes: int = 0) -> None:
        if self.offset == 0:  # pynq flushes before a send itself
            array.flush()
        self.mmio.write(self.offset + 0x18, array.physical_address + start)
        self.mmio.write(self.offset + 0x28, nbytes)


class ThinDMA:
    def __init__(self, device: FakeZynq, base: int) -> None:
        self.mmio = ThinMMIO(device, base)
        self.buffer_max_size = (1 << 26) - 1
        self.sendchannel = ThinChannel(self.mmio, 0x00)
        self.recvchannel = ThinChannel(self.mmio, 0x30)


def pynq_device(config: AcceleratorConfig, **core: Any) -> FakeZynq:
    """A new :class:`FakeZynq` that is also a ``pynq.Device`` (needs the ``pynq`` package)."""
    if pynq is None:
        raise RuntimeError("the pynq flavour needs the pynq package")
    # FakeZynq first: its allocate/flush/invalidate must win over pynq.Device's.
    device_cls = type("PynqFakeZynq", (FakeZynq, pynq.Device), {"capabilities": {"REGISTER_RW": True}})
    device = device_cls.__new__(device_cls)
    pynq.Device.__init__(device, "fake-zynq")
    FakeZynq.__init__(device, config, **core)
    return device


def pynq_ip_and_dma(device: FakeZynq) -> tuple[Any, Any]:
    """The real ``pynq.DefaultIP`` of the accelerator and ``pynq.lib.dma.DMA`` on a :func:`pynq_device`."""
    ip = pynq.DefaultIP({"phys_addr": ACCEL_BASE, "addr_range": WINDOW, "device": device})
    dma = PynqDMA(
        {
            "phys_addr": DMA_BASE,
            "addr_range": WINDOW,
            "device": device,
            "interrupts": {},
            "parameters": {
                "c_include_sg": "0",
                "c_sg_length_width": "26",
                "c_include_mm2s": "1",
                "c_include_s2mm": "1",
                "c_m_axi_mm2s_data_width": "64",
                "c_m_axi_s2mm_data_width": "64",
            },
        }
    )
    return ip, dma


def make_backend(flavour: str, config: AcceleratorConfig, **core: Any) -> tuple[Any, FakeZynq]:
    """A :class:`PynqBackend` on a new :class:`FakeZynq`; ``flavour`` is ``"thin"`` or ``"pynq"``."""
    from host.backends.pynq_backend import PynqBackend

    if flavour == "thin":
        device = FakeZynq(config, **core)
        ip, dma, allocate = ThinMMIO(device, ACCEL_BASE), ThinDMA(device, DMA_BASE), device.allocate
    elif flavour == "pynq":
        device = pynq_device(config, **core)
        ip, dma = pynq_ip_and_dma(device)

        def allocate(shape: Any, dtype: Any) -> Any:
            return pynq.allocate(shape, dtype, target=device)
    else:
        raise ValueError(f"unknown flavour {flavour!r}")
    return PynqBackend(ip=ip, dma=dma, allocate=allocate, poll_s=1e-5, min_timeout_s=0.05), device


# ---------------------------------------------------------------------- a stand-in pynq package
class FakeOverlay:
    """What ``pynq.Overlay(bitfile)`` gives :meth:`PynqBackend.from_overlay`: the IP dict and the two IPs."""

    def __init__(self, device: FakeZynq, ip_name: str, dma_name: str) -> None:
        self.ip_dict = {ip_name: {"phys_addr": ACCEL_BASE}, dma_name: {"phys_addr": DMA_BASE}}
        setattr(self, ip_name, ThinMMIO(device, ACCEL_BASE))
        setattr(self, dma_name, ThinDMA(device, DMA_BASE))


def install_fake_pynq(config: AcceleratorConfig, **core: Any) -> FakeZynq:
    """Register a ``pynq`` module (``Overlay``, ``allocate``) backed by a new :class:`FakeZynq`.

    With it, the real :func:`host.backends.open_backend` ``("pynq", overlay=...)`` binds the
    fake board, so ``python -m host.run --backend pynq`` runs its whole board path in a process
    without PYNQ; the overlay files must exist (their contents are not read).
    """
    import sys
    import types

    from host.bitstream import DMA_INSTANCE, IP_INSTANCE

    device = FakeZynq(config, **core)
    module = types.ModuleType("pynq")
    module.Overlay = lambda bitfile, download=True: FakeOverlay(device, IP_INSTANCE, DMA_INSTANCE)
    module.allocate = device.allocate
    sys.modules["pynq"] = module
    return device


# ---------------------------------------------------------------------- backends of spawned workers
def open_thin(config: str, send_delay_s: float = 0.0) -> Any:
    """A thin :func:`make_backend` on a new fake board: the opener of a :func:`host.parallel.run_shares`
    worker (a module-level function, so a spawned process finds it by name).

    ``send_delay_s``: real seconds each DMA send waits first (a worker that is still busy
    when another fails).
    """
    from protocol.config import get_config

    backend, _ = make_backend("thin", get_config(config))
    if send_delay_s:
        send = backend.start_send

        def slow_send(buffer: Any, words: int) -> None:
            time.sleep(send_delay_s)
            send(buffer, words)

        backend.start_send = slow_send
    return backend


def exit_at_open(status: int) -> Any:
    """An opener whose worker dies at once with exit ``status`` (no exception, no message)."""
    os._exit(status)
