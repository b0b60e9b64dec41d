"""Verilator lint waivers of the accelerator's generated Verilog, each with its reason.

:data:`WAIVERS` are scoped to the generated file by message; :func:`line_waivers` adds the
ones only a line number can pin down (Amaranth writer artefacts), computed from the text.
:func:`write_waivers` writes both as a Verilator control file beside the Verilog.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path

from hw.accel.generate import VERILOG_FILE
from hw.generate import write_if_changed
from sim.lint import Waiver

__all__ = ["WAIVERS", "SHORTENED_OPERATORS", "WAIVER_FILE", "line_waivers", "waiver_text", "write_waivers"]

#: File name of the control file beside the generated top.
WAIVER_FILE = "accel_waivers.vlt"

#: Verilator operators whose operands Amaranth's RTLIL writer shortens: for ``+ - * == !=``,
#: the comparisons, the shifts and unary minus, ``amaranth.back.rtlil`` (``shorten_operand``)
#: strips every operand's sign or zero extension (constants included) before yosys writes the
#: Verilog, so the extension an Amaranth source spells out (``hw.arith.extend``) is gone again
#: and Verilog's implicit extension takes its place, with the same result.
SHORTENED_OPERATORS: tuple[str, ...] = (
    "ADD",
    "SUB",
    "MUL",
    "NEGATE",
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "LTS",
    "LTES",
    "GTS",
    "GTES",
    "SHIFTL",
    "SHIFTR",
    "SHIFTRS",
)

#: Warnings waived in the accelerator's generated Verilog only (``-file`` scoped), each by
#: message; :func:`line_waivers` adds the ones that only a line number can pin down. The
#: PEs inside are also lint-clean on their own under ``sim.lint.WAIVERS``.
WAIVERS: tuple[Waiver, ...] = (
    *(
        Waiver(
            "WIDTHEXPAND",
            "Amaranth's RTLIL writer strips operand extensions of arithmetic, comparison and shift "
            "cells (amaranth.back.rtlil, shorten_operand), so an operand the source extends "
            "reaches Verilog narrower than the result; Verilog extends it back the same way. "
            "Only these operators are waived: assignments, muxes and bitwise operators still fail.",
            match=f"Operator {operator} expects *",
        )
        for operator in SHORTENED_OPERATORS
    ),
    Waiver(
        "WIDTHTRUNC",
        "An Amaranth FSM's `ongoing` test of its initial state (encoding 0) becomes `!<fsm>_state` "
        "once the writer strips the zero constant; only FSM state registers are waived.",
        match="Logical operator LOGNOT expects 1 bit on the LHS, but LHS's VARREF '*_state' generates *",
    ),
    # AXI4-Lite fixes these ports' widths; the register file uses only part of them.
    *(
        Waiver(
            "UNUSEDSIGNAL",
            "AXI4-Lite addresses are byte addresses; the registers are 32-bit words, so the "
            "byte offset is ignored (as the protocol allows a 32-bit slave to).",
            match=f"Bits of signal are not used: '{port}'[1:0]",
        )
        for port in ("s_axi_awaddr", "s_axi_araddr")
    ),
    Waiver(
        "UNUSEDSIGNAL",
        "CONTROL is the only writable register and its fields (START, SOFT_RESET) sit in the low "
        "bits of byte 0; the other data bits are ignored, as regmap documents.",
        match="Bits of signal are not used: 's_axi_wdata'[31:*]",
    ),
    Waiver(
        "UNUSEDSIGNAL",
        "Only byte 0 of CONTROL holds fields, so only its write strobe gates the write.",
        match="Bits of signal are not used: 's_axi_wstrb'[3:1]",
    ),
    Waiver(
        "DECLFILENAME",
        "Amaranth writes the whole hierarchy into one file; submodules are named `top.sub`.",
        match="Filename 'spikeformer_accel' does not match MODULE name: 'spikeformer_accel.*'",
    ),
)

#: Amaranth FSMs switch on their state register with one case per declared state and no
#: default: the register only ever holds a declared encoding, and Amaranth has no way to
#: add a default arm. Verilator's message names no signal, so :func:`line_waivers` waives
#: exactly the ``casez (<name>_state)`` lines of the generated file.
FSM_CASE_REASON = (
    "Amaranth FSM state switch: the state register holds only declared encodings and the FSM "
    "has no default arm to give; waived line by line on `casez (*_state)` only."
)

#: Amaranth also decodes every FSM state (``state == encoding``, ``!state`` for the first) for
#: ``fsm.ongoing()``, whether or not anything asks.
FSM_DECODE_REASON = (
    "Amaranth decodes each FSM state into an anonymous net whether or not it is read; waived "
    "line by line on `$N` wires driven only by such a decode."
)

#: Amaranth's netlist folds an always-true OR (``~valid | ready`` with ``ready`` tied to 1 in
#: the parent) and swaps a mux on a negated select (``Mux(~c, a, b)``), but keeps the now
#: unread negation as an anonymous net.
NEGATION_REASON = (
    "Amaranth folds the logic that read a negation (an OR with a tied-high input, a mux on a "
    "negated select) but keeps the anonymous `~x` net; waived line by line on `$N = ~ x` wires."
)

#: A named wire whose every driver is pure wiring (a copy, slice, concatenation or constant)
#: is never read in Amaranth's output: the netlist hands its readers the driving nets
#: themselves (a port seen from the parent as `desc$17`, a field forwarded to a submodule,
#: a loop count driven from a descriptor field). Whether those nets are used is checked on
#: them; the alias itself carries no logic.
ALIAS_REASON = (
    "Amaranth keeps a named wire for a signal driven by pure wiring but hands its readers the "
    "driving nets; waived line by line on such wire declarations only."
)

_ESCAPED = re.compile(r"\\\S+\s")
_WIRING = re.compile(r"[\w\s'\[\]:{},$]*")
_ASSIGN = re.compile(r"^\s*assign (\\\S+ |[\w$]+)(?:\[[^\]]*\])? = (.*);$")
_WIRE = re.compile(r"^\s*wire (?:\[[^\]]*\] )?(\\\S+ |[\w$]+);$")
_FSM_CASE = re.compile(r"^\s*casez \([\w$]+_state\)$")
_NEGATION = re.compile(r"~ (?:\\\S+|[\w$]+)")
_FSM_DECODE = re.compile(r"(?:! [\w$]+_state|[\w$]+_state == \d+'h[0-9a-f]+)")


def line_waivers(verilog: str) -> list[tuple[str, int, str]]:
    """``(rule, line, reason)`` for the warnings of ``verilog`` that only a line can scope:
    the FSM state switches, the unread FSM state decodes and negations, and the declarations
    of pure-wiring aliases (see above)."""
    lines = verilog.splitlines()
    found: list[tuple[str, int, str]] = []
    # Per module: every driver of each named wire, and where it is declared.
    bounds = [i for i, line in enumerate(lines) if line.startswith("module ")] + [len(lines)]
    for begin, end in itertools.pairwise(bounds):
        declared: dict[str, int] = {}
        pure: dict[str, bool] = {}
        helpers: dict[str, str] = {}  # anonymous FSM decodes and negations -> reason
        for i in range(begin, end):
            line = lines[i]
            if _FSM_CASE.match(line):
                found.append(("CASEINCOMPLETE", i + 1, FSM_CASE_REASON))
            elif (wire := _WIRE.match(line)) is not None:
                declared[wire.group(1).strip()] = i + 1
            elif (assign := _ASSIGN.match(line)) is not None:
                name, driver = assign.group(1).strip(), assign.group(2).strip()
                if name.startswith("\\$") and _FSM_DECODE.fullmatch(driver):
                    helpers[name] = FSM_DECODE_REASON
                elif name.startswith("\\$") and _NEGATION.fullmatch(driver):
                    helpers[name] = NEGATION_REASON
                wiring = _WIRING.fullmatch(_ESCAPED.sub(" ", driver + " ")) is not None
                pure[name] = pure.get(name, True) and wiring
        for name, line in declared.items():
            if pure.get(name, False):
                found.append(("UNUSEDSIGNAL", line, ALIAS_REASON))
            elif name in helpers:
                found.append(("UNUSEDSIGNAL", line, helpers[name]))
    return sorted(found, key=lambda item: item[1])


def waiver_text(waivers: Sequence[Waiver] = WAIVERS, lines: Sequence[tuple[str, int, str]] = ()) -> str:
    """Verilator control file waiving ``waivers`` and the ``(rule, line, reason)`` ``lines``
    in :data:`VERILOG_FILE` only; each line reason is written once."""
    out = ["`verilator_config", "// Generated by sim/accel/lint.py (WAIVERS, line_waivers()); edit there."]
    for waiver in waivers:
        out.append(f"// {waiver.rule}: {waiver.reason}")
        match = f' -match "{waiver.match}"' if waiver.match is not None else ""
        out.append(f'lint_off -rule {waiver.rule} -file "*/{VERILOG_FILE}"{match}')
    explained: set[str] = set()
    for rule, line, reason in lines:
        if reason not in explained:
            explained.add(reason)
            out.append(f"// {rule}: {reason}")
        out.append(f'lint_off -rule {rule} -file "*/{VERILOG_FILE}" -lines {line}')
    return "\n".join(out) + "\n"


def write_waivers(verilog: Path) -> Path:
    """Write the waivers of the generated top ``verilog`` beside it (only when they change)."""
    path = Path(verilog).with_name(WAIVER_FILE)
    write_if_changed(path, waiver_text(WAIVERS, line_waivers(Path(verilog).read_text())))
    return path
