"""The accelerator top's Verilog lints clean with waivers scoped to Amaranth writer artefacts.

:func:`sim.accel.lint.line_waivers` is checked on hand-written Verilog in Amaranth's
output style (fast); the ``sim`` and ``sim-zero-skip`` tops are generated and linted like
``make rtl`` does (Verilator).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.accel.generate import generate
from sim import lint
from sim.accel.lint import line_waivers, write_waivers

#: Amaranth-style Verilog: one alias of each kind, FSM helpers, and the look-alikes that
#: must stay unwaived (a wire driven by logic, a switch on anything but an FSM state).
SAMPLE = """\
module top(a, b, y);
  input [3:0] a;
  input b;
  output y;
  wire [3:0] copy;
  wire [4:0] joined;
  wire [3:0] logic;
  wire \\port$3 ;
  wire \\$1 ;
  wire \\$2 ;
  wire \\$3 ;
  wire \\$4 ;
  reg [1:0] sequencer_state;
  assign copy = a;
  assign joined = { 1'h0, a[3:1], \\port$3  };
  assign logic = a & { b, b, b, b };
  assign \\port$3  = b;
  assign \\$1  = ! sequencer_state;
  assign \\$2  = sequencer_state == 2'h2;
  assign \\$3  = ~ b;
  assign \\$4  = ~ \\$3 ;
  always @* begin
    casez (sequencer_state)
      2'h0: y = 1'h0;
    endcase
    casez (a)
      4'h0: y = 1'h1;
    endcase
  end
endmodule
"""


def test_line_waivers_cover_only_amaranth_artefacts() -> None:
    lines = SAMPLE.splitlines()
    waived = {(rule, lines[line - 1].strip()) for rule, line, _ in line_waivers(SAMPLE)}
    assert waived == {
        ("UNUSEDSIGNAL", "wire [3:0] copy;"),
        ("UNUSEDSIGNAL", "wire [4:0] joined;"),
        ("UNUSEDSIGNAL", "wire \\port$3 ;"),
        ("UNUSEDSIGNAL", "wire \\$1 ;"),
        ("UNUSEDSIGNAL", "wire \\$2 ;"),
        ("UNUSEDSIGNAL", "wire \\$3 ;"),
        ("UNUSEDSIGNAL", "wire \\$4 ;"),
        ("CASEINCOMPLETE", "casez (sequencer_state)"),
    }


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("config", ["sim", "sim-zero-skip"])
def test_accel_top_lints_clean(tmp_path: Path, config: str) -> None:
    """``verilator --lint-only -Wall`` with sim.lint's waivers plus the generated, scoped ones."""
    paths = generate(config, tmp_path)
    scoped = write_waivers(paths["verilog"])
    lint.lint(paths["verilog"], waivers=lint.write_waivers(tmp_path), extra_waivers=[scoped])
