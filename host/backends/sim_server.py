"""The simulator side of the simulation backend: a cocotb test that serves bus requests.

:class:`host.backends.cocotb_backend.CocotbSimBackend` builds the accelerator top under
Verilator and runs this module as its cocotb test. The test drives ``aclk`` and
``aresetn``, puts bus models on the top's AXI interfaces and then serves requests
arriving on a Unix socket (path in :data:`SOCKET_ENV`), one at a time, until the
backend closes the connection. Simulated time advances only while a request is
served, so the design is frozen while the host-side driver computes, exactly as if
the driver ran in zero time.

Bus models:

* AXI4-Lite: cocotbext-axi's :class:`~cocotbext.axi.AxiLiteMaster` on ``s_axi_*``;
* AXI DMA: :class:`MM2SChannel` on ``s_axis_*`` and :class:`S2MMChannel` on ``m_axis_*``,
  small models of the Xilinx AXI DMA's simple-mode channels: one transfer at a time,
  TLAST on the last word sent, a receive transfer ends at TLAST (a packet longer than
  the transfer is a DMA error) and ``TREADY`` is high only while a receive transfer is
  armed, as on the board. While the core stalls them they sleep until ``TREADY`` /
  ``TVALID`` rises instead of waking every cycle, which keeps long programs fast.

Requests carry ``op`` (see :meth:`Server.dispatch`); replies carry ``ok``, ``time_ps``
and the op's result (wire format: :mod:`host.backends.wire`).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import SimHandleBase
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from .wire import PERIOD_ENV, SOCKET_ENV, decode_words, encode_words, recv_message, send_message

__all__ = ["RESET_CYCLES", "MM2SChannel", "S2MMChannel", "Server"]
#: Cycles ``aresetn`` is held low at start-up.
RESET_CYCLES = 8

# ---------------------------------------------------------------------- DMA channel models
def _high(signal: SimHandleBase) -> bool:
    return str(signal.value) == "1"


class _Channel:
    def __init__(self, dut: SimHandleBase, prefix: str, clock: SimHandleBase) -> None:
        self.clock = clock
        self.prefix = prefix
        self.tdata = self._port(dut, "tdata")
        self.tvalid = self._port(dut, "tvalid")
        self.tready = self._port(dut, "tready")
        self.tlast = self._port(dut, "tlast")
        self.busy = False
        self.error = ""
        #: The transfer loop is running (it may outlive ``busy`` by a cycle after an abort).
        self.active = False
        self._go = Event()
        self._abort = Event()

    def _port(self, dut: SimHandleBase, name: str) -> SimHandleBase:
        full = f"{self.prefix}_{name}"
        try:
            return getattr(dut, full)
        except AttributeError:
            raise AttributeError(f"the top has no port {full}") from None

    def abort(self) -> None:
        """Stop the transfer in progress and clear the error (the DMA's soft reset)."""
        if self.active:
            self._abort.set()
        self.busy = False
        self.error = ""

    def _check_idle(self) -> None:
        if self.busy or self.active:
            raise RuntimeError(f"DMA channel on {self.prefix} not idle")


class MM2SChannel(_Channel):
    """Memory-to-stream: sends one transfer's words on ``<prefix>_t*``, TLAST on the last."""

    def __init__(self, dut: SimHandleBase, prefix: str, clock: SimHandleBase) -> None:
        super().__init__(dut, prefix, clock)
        self.tvalid.value = 0
        self.tlast.value = 0
        self.tdata.value = 0
        self._words: list[int] = []
        self._keep = getattr(dut, f"{prefix}_tkeep", None)
        if self._keep is not None:
            self._keep.value = (1 << len(self._keep)) - 1
        cocotb.start_soon(self._run())

    def start(self, words: np.ndarray) -> None:
        self._check_idle()
        if len(words) == 0:
            self.error = "DMAIntErr: transfer length 0"
            return
        self._words = [int(w) for w in words]
        self.busy = True
        self._abort.clear()
        self._go.set()

    def _present(self, index: int) -> None:
        self.tdata.value = self._words[index]
        self.tlast.value = int(index == len(self._words) - 1)
        self.tvalid.value = 1

    async def _run(self) -> None:
        edge = RisingEdge(self.clock)
        while True:
            await self._go.wait()
            self._go.clear()
            self.active = True
            index = 0
            self._present(0)
            while True:
                await edge
                if self._abort.is_set():
                    break
                if _high(self.tready):
                    index += 1
                    if index == len(self._words):
                        break
                    self._present(index)
                else:
                    # Stalled: sleep until the core raises TREADY (or the transfer is aborted).
                    await First(RisingEdge(self.tready), self._abort.wait())
                    if self._abort.is_set():
                        break
            self.tvalid.value = 0
            self.tlast.value = 0
            self.busy = self.active = False


class S2MMChannel(_Channel):
    """Stream-to-memory: receives one packet (up to TLAST, at most ``words``) per transfer."""

    def __init__(self, dut: SimHandleBase, prefix: str, clock: SimHandleBase) -> None:
        super().__init__(dut, prefix, clock)
        self.tready.value = 0
        self._limit = 0
        self.received: list[int] = []
        cocotb.start_soon(self._run())

    def start(self, words: int) -> None:
        self._check_idle()
        if words < 1:
            self.error = "DMAIntErr: transfer length 0"
            return
        self._limit = words
        self.received = []
        self.busy = True
        self._abort.clear()
        self.tready.value = 1
        self._go.set()

    async def _run(self) -> None:
        edge = RisingEdge(self.clock)
        while True:
            await self._go.wait()
            self._go.clear()
            self.active = True
            while True:
                await edge
                if self._abort.is_set():
                    break
                if _high(self.tvalid):
                    self.received.append(self.tdata.value.to_unsigned())
                    if _high(self.tlast):
                        break
                    if len(self.received) == self._limit:
                        self.error = (f"DMAIntErr: packet longer than the {self._limit}-word transfer "
                                      f"(no TLAST)")
                        break
                else:
                    await First(RisingEdge(self.tvalid), self._abort.wait())
                    if self._abort.is_set():
                        break
            self.tready.value = 0
            self.busy = self.active = False


# ---------------------------------------------------------------------- the server
class Server:
    """Clock, reset, bus models and the request loop on one top-level design."""

    def __init__(self, dut: SimHandleBase, *, period_ps: int) -> None:
        self.dut = dut
        self.period_ps = period_ps
        Clock(dut.aclk, period_ps, unit="ps").start()
        dut.aresetn.value = 0
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.mm2s = MM2SChannel(dut, "s_axis", dut.aclk)
        self.s2mm = S2MMChannel(dut, "m_axis", dut.aclk)

    async def reset(self, cycles: int = RESET_CYCLES) -> None:
        self.dut.aresetn.value = 0
        await Timer(cycles * self.period_ps, unit="ps")
        self.dut.aresetn.value = 1
        await RisingEdge(self.dut.aclk)

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Serve one request; the reply's extra fields depend on ``op``."""
        op = request.get("op")
        if op in ("send", "receive", "reset_dma"):
            # Change the channels' signals mid-cycle: a write in the time step of a rising edge
            # may or may not be seen by that edge, and a channel would miscount a handshake.
            await FallingEdge(self.dut.aclk)
        if op == "hello":
            return {"period_ps": self.period_ps}
        if op == "read":
            return {"value": int(await self.axil.read_dword(int(request["addr"])))}
        if op == "write":
            await self.axil.write_dword(int(request["addr"]), int(request["value"]) & 0xFFFF_FFFF)
            return {}
        if op == "send":
            self.mm2s.start(decode_words(request["data"]))
            return {}
        if op == "receive":
            self.s2mm.start(int(request["words"]))
            return {}
        if op == "state":
            return {"send_busy": self.mm2s.busy, "send_error": self.mm2s.error,
                    "receive_busy": self.s2mm.busy, "receive_error": self.s2mm.error,
                    "received": len(self.s2mm.received)}
        if op == "take":
            return {"data": encode_words(np.asarray(self.s2mm.received, dtype=np.uint64))}
        if op == "reset_dma":
            self.mm2s.abort()
            self.s2mm.abort()
            while self.mm2s.active or self.s2mm.active:
                await RisingEdge(self.dut.aclk)
            return {}
        if op == "advance":
            cycles = max(1, int(request["cycles"]))
            await Timer(cycles * self.period_ps, unit="ps")
            return {}
        if op == "reset":
            await self.reset(int(request.get("cycles", RESET_CYCLES)))
            return {}
        raise ValueError(f"unknown request {op!r}")

    async def serve(self, sock: socket.socket) -> None:
        await self.reset()
        while True:
            request = recv_message(sock)   # blocks the simulator: time stands still meanwhile
            if request is None or request.get("op") == "close":
                return
            try:
                reply = {"ok": True, **await self.dispatch(request)}
            except Exception as exc:  # noqa: BLE001 -- every failure goes back to the driver as text
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            reply["time_ps"] = int(get_sim_time(unit="ps"))
            send_message(sock, reply)


@cocotb.test()
async def serve(dut: SimHandleBase) -> None:
    """Serve the backend connected at :data:`SOCKET_ENV` until it closes the connection."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        raise RuntimeError(f"{SOCKET_ENV} is not set: this test runs under host.backends.cocotb_backend")
    period_ps = int(os.environ.get(PERIOD_ENV, "10000"))
    server = Server(dut, period_ps=period_ps)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        await server.serve(sock)
