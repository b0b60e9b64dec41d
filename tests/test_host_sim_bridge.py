"""The simulated backend's bus models (AXI4-Lite master, AXI DMA channels) on a small echo device.

The echo device (Verilog below) has the accelerator's bus interfaces: AXI4-Lite
registers (a scratch register, a beat counter, a ``hold`` bit that keeps ``s_axis_tready``
low) and an AXI4-Stream path that returns every input word inverted with its TLAST.
It checks, independently of the accelerator, what the driver relies on: register
round trips, a send with TLAST on its last word, a receive that ends at TLAST, a
receive channel that back-pressures until it is armed, a packet longer than its
transfer reported as a DMA error, aborting a stalled transfer, simulated time, and
that the DMA reads the flushed copy of a buffer. The models are the C++ bridge of
:mod:`host.backends.native_backend`, the project's one model of the board's AXI DMA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.backends.base import ShadowBuffer
from sim.tools import locked

pytestmark = pytest.mark.sim

ECHO = """\
/* verilator lint_off UNUSEDSIGNAL */
module echo(
    input aclk, input aresetn,
    input [15:0] s_axi_awaddr, input s_axi_awvalid, output reg s_axi_awready,
    input [31:0] s_axi_wdata, input [3:0] s_axi_wstrb, input s_axi_wvalid, output reg s_axi_wready,
    output [1:0] s_axi_bresp, output reg s_axi_bvalid, input s_axi_bready,
    input [15:0] s_axi_araddr, input s_axi_arvalid, output reg s_axi_arready,
    output reg [31:0] s_axi_rdata, output [1:0] s_axi_rresp, output reg s_axi_rvalid, input s_axi_rready,
    input [63:0] s_axis_tdata, input s_axis_tvalid, output s_axis_tready, input s_axis_tlast,
    output reg [63:0] m_axis_tdata, output reg m_axis_tvalid, input m_axis_tready, output reg m_axis_tlast);
    reg [31:0] scratch;
    reg [31:0] count;
    reg hold;
    assign s_axi_bresp = 2'b00;
    assign s_axi_rresp = 2'b00;
    assign s_axis_tready = !hold && (!m_axis_tvalid || m_axis_tready);
    always @(posedge aclk) begin
        if (!aresetn) begin
            s_axi_awready <= 0; s_axi_wready <= 0; s_axi_bvalid <= 0;
            s_axi_arready <= 0; s_axi_rvalid <= 0; s_axi_rdata <= 0;
            scratch <= 0; count <= 0; hold <= 0;
            m_axis_tvalid <= 0; m_axis_tdata <= 0; m_axis_tlast <= 0;
        end else begin
            s_axi_awready <= 0; s_axi_wready <= 0; s_axi_arready <= 0;
            if (s_axi_awvalid && s_axi_wvalid && !s_axi_awready && !s_axi_bvalid) begin
                s_axi_awready <= 1; s_axi_wready <= 1; s_axi_bvalid <= 1;
                if (s_axi_awaddr == 16'h0) scratch <= s_axi_wdata;
                if (s_axi_awaddr == 16'h8) hold <= s_axi_wdata[0];
            end
            if (s_axi_bvalid && s_axi_bready) s_axi_bvalid <= 0;
            if (s_axi_arvalid && !s_axi_arready && !s_axi_rvalid) begin
                s_axi_arready <= 1; s_axi_rvalid <= 1;
                s_axi_rdata <= s_axi_araddr == 16'h0 ? scratch : s_axi_araddr == 16'h4 ? count : 32'hdeadbeef;
            end
            if (s_axi_rvalid && s_axi_rready) s_axi_rvalid <= 0;
            if (m_axis_tvalid && m_axis_tready) m_axis_tvalid <= 0;
            if (s_axis_tvalid && s_axis_tready) begin
                m_axis_tdata <= ~s_axis_tdata; m_axis_tlast <= s_axis_tlast; m_axis_tvalid <= 1;
                count <= count + 1;
            end
        end
    end
endmodule
"""


@pytest.fixture(scope="module")
def echo():
    from host.backends.native_backend import DEFAULT_ROOT, NativeSimBackend

    build = Path(DEFAULT_ROOT) / "echo"
    with locked(build):
        verilog = build / "echo.v"
        if not verilog.is_file() or verilog.read_text() != ECHO:
            verilog.write_text(ECHO)
    backend = NativeSimBackend(
        sources=[verilog], toplevel="echo", build_dir=build / "native", clock_mhz=100.0
    )
    yield backend
    backend.close()


def wait_idle(backend, state, limit: int = 10_000):
    for _ in range(limit):
        current = state()
        if not current.busy:
            return current
        backend.sleep(backend.poll_s)
    raise AssertionError("channel stayed busy")


def filled(words: int, seed: int) -> ShadowBuffer:
    buf = ShadowBuffer(words)
    buf.array[:] = np.random.default_rng(seed).integers(0, 2**63, words, dtype=np.uint64)
    buf.flush()
    return buf


def test_registers_and_time(echo) -> None:
    echo.write(0x0, 0x1234_5678)
    assert echo.read(0x0) == 0x1234_5678
    assert echo.read(0x40) == 0xDEADBEEF
    before = echo.now()
    echo.sleep(1e-6)  # 100 cycles at 100 MHz
    assert 1e-6 <= echo.now() - before < 1.2e-6


def test_stream_round_trip_ends_at_tlast(echo) -> None:
    count = echo.read(0x4)
    src, dst = filled(300, seed=1), ShadowBuffer(400)
    echo.start_receive(dst, 50, 400 - 50)
    echo.start_send(src, 300)
    wait_idle(echo, echo.send_state)
    state = wait_idle(echo, echo.receive_state)
    assert state.received == 300 and not state.error
    dst.invalidate()
    np.testing.assert_array_equal(dst.array[50:350], ~src.array)
    assert (dst.array[:50] == 0).all() and (dst.array[350:] == 0).all()
    assert echo.read(0x4) == count + 300


def test_receive_back_pressures_until_armed(echo) -> None:
    src, dst = filled(4, seed=2), ShadowBuffer(4)
    echo.start_send(src, 4)
    echo.sleep(2e-6)
    # The echo holds one word and then waits for the unarmed receive channel.
    assert echo.send_state().busy
    echo.start_receive(dst, 0, 4)
    wait_idle(echo, echo.send_state)
    assert wait_idle(echo, echo.receive_state).received == 4
    dst.invalidate()
    np.testing.assert_array_equal(dst.array, ~src.array)


def test_packet_longer_than_the_transfer_is_a_dma_error(echo) -> None:
    src, dst = filled(10, seed=3), ShadowBuffer(6)
    echo.start_receive(dst, 0, 6)
    echo.start_send(src, 10)
    state = wait_idle(echo, echo.receive_state)
    assert "DMAIntErr" in state.error
    echo.reset_dma()
    # Drain what the echo still holds, then the channels work again.
    drain = ShadowBuffer(10)
    echo.start_receive(drain, 0, 10)
    echo.sleep(1e-6)
    echo.reset_dma()
    test_stream_round_trip_ends_at_tlast(echo)


def test_stalled_send_is_aborted_by_a_dma_reset(echo) -> None:
    echo.write(0x8, 1)  # hold: the device never takes a word
    echo.start_send(filled(8, seed=4), 8)
    echo.sleep(5e-6)
    assert echo.send_state().busy
    echo.reset_dma()
    assert not echo.send_state().busy
    echo.write(0x8, 0)
    test_stream_round_trip_ends_at_tlast(echo)


def test_dma_reads_the_flushed_copy(echo) -> None:
    src, dst = ShadowBuffer(3), ShadowBuffer(3)
    src.array[:] = [1, 2, 3]  # written but not flushed: memory still holds zeros
    echo.start_receive(dst, 0, 3)
    echo.start_send(src, 3)
    wait_idle(echo, echo.receive_state)
    dst.invalidate()
    np.testing.assert_array_equal(dst.array, np.full(3, 2**64 - 1, dtype=np.uint64))
