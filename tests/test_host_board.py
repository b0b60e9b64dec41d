"""Board flow without a board or Vivado: TCL vs generated top, ``make bitstream`` / ``deploy`` plumbing.

* The Vivado script and the generated accelerator top agree on every port and
  interface name: the ports are parsed from the Verilog that
  :func:`host.rtl.write_top` writes (the ``sim`` configuration: port names and widths do
  not depend on the configuration, and the ``pynq-z2`` top takes minutes to generate),
  the names from the ``set`` lines of board/bitstream.tcl, and every accelerator pin
  the block design connects must be one of them.
* :mod:`host.bitstream` stops at once, before generating anything, without ``vivado``.
* The make targets pass the right arguments; ``deploy`` stages a directory that runs
  on a board's Python (packages, overlay, export, vendored Amaranth).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from golden.export import make_test_vectors, write_export
from host import bitstream, deploy
from host.backends.simcommon import DEFAULT_ROOT
from hw.accel import regmap
from hw.accel.config import STREAM_BITS

from intmodel_factory import random_input, random_int_model

ROOT = Path(__file__).resolve().parents[1]
TCL = (ROOT / "board" / "bitstream.tcl").read_text()
_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                   r"([A-Za-z_][A-Za-z0-9_$]*)\s*;")


def tcl_variable(name: str) -> str:
    match = re.search(rf"^set {name} (\S+)$", TCL, re.MULTILINE)
    assert match, f"board/bitstream.tcl sets no {name}"
    return match.group(1)


def verilog_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    """``name -> (direction, width)`` of the ports of ``module`` in Verilog text."""
    start = re.search(rf"^module {re.escape(module)}\(", text, re.MULTILINE)
    assert start, f"no module {module}"
    end = text.index("endmodule", start.end())
    ports = {}
    for line in text[start.end():end].splitlines():
        match = _PORT.match(line)
        if match:
            direction, high, low, name = match.groups()
            ports[name] = (direction, 1 if high is None else int(high) - int(low) + 1)
    return ports


@pytest.fixture(scope="module")
def top_ports() -> dict[str, tuple[str, int]]:
    from host.backends.simcommon import top_for_config

    files, _, _ = top_for_config("sim", ROOT / DEFAULT_ROOT)
    return verilog_ports(files.verilog.read_text(), files.toplevel)


AXI_LITE = {  # signal -> (direction seen from the slave, width or None for "any")
    "awaddr": ("input", regmap.ADDRESS_BITS), "awvalid": ("input", 1), "awready": ("output", 1),
    "wdata": ("input", 32), "wstrb": ("input", 4), "wvalid": ("input", 1), "wready": ("output", 1),
    "bresp": ("output", 2), "bvalid": ("output", 1), "bready": ("input", 1),
    "araddr": ("input", regmap.ADDRESS_BITS), "arvalid": ("input", 1), "arready": ("output", 1),
    "rdata": ("output", 32), "rresp": ("output", 2), "rvalid": ("output", 1), "rready": ("input", 1),
}


def stream(slave: bool, bits: int) -> dict[str, tuple[str, int]]:
    into, out = ("input", "output") if slave else ("output", "input")
    return {"tdata": (into, bits), "tvalid": (into, 1), "tready": (out, 1), "tlast": (into, 1)}


def test_tcl_and_generated_top_agree_on_ports_and_interfaces(top_ports) -> None:
    bits = int(tcl_variable("STREAM_BITS"))
    assert bits == STREAM_BITS
    clock, reset = tcl_variable("CLOCK_PORT"), tcl_variable("RESET_PORT")
    assert top_ports[clock] == ("input", 1)
    assert top_ports[reset] == ("input", 1)
    assert "ACTIVE_LOW" in TCL and reset.endswith("n")     # the TCL declares the reset active low
    expected = {clock: top_ports[clock], reset: top_ports[reset]}
    for variable, signals in (("CONTROL_INTF", AXI_LITE), ("STREAM_IN_INTF", stream(True, bits)),
                              ("STREAM_OUT_INTF", stream(False, bits))):
        prefix = tcl_variable(variable)
        for signal, (direction, width) in signals.items():
            port = f"{prefix}_{signal}"
            assert port in top_ports, f"the TCL's {variable} {prefix!r} needs port {port}"
            assert top_ports[port] == (direction, width), port
            expected[port] = top_ports[port]
    # Ports outside the connected interfaces: only optional outputs Vivado leaves open (TKEEP
    # joins the inferred m_axis interface; an interrupt line stays unconnected: the driver polls).
    extra = {name: port for name, port in top_ports.items() if name not in expected}
    optional = {f"{tcl_variable('STREAM_OUT_INTF')}_tkeep": ("output", bits // 8), "interrupt": ("output", 1)}
    assert extra.items() <= optional.items(), extra


def test_block_design_connects_only_those_names() -> None:
    pins = set(re.findall(r"\$ip_inst/([^\]\s]+)\]", TCL))
    assert pins == {"$CLOCK_PORT", "$RESET_PORT", "$CONTROL_INTF", "$STREAM_IN_INTF", "$STREAM_OUT_INTF"}
    # The DMA's stream width and length register come from the same variables / arguments.
    for key, value in (("c_m_axis_mm2s_tdata_width", "$STREAM_BITS"),
                       ("c_s_axis_s2mm_tdata_width", "$STREAM_BITS"),
                       ("c_sg_length_width", "$length_width"), ("c_include_sg", "0")):
        assert re.search(rf"CONFIG\.{key} {re.escape(value)}\b", TCL), key


def test_tcl_arguments_match_the_wrapper(tmp_path) -> None:
    names = re.search(r"^lassign \$argv (.+)$", TCL, re.MULTILINE).group(1).split()
    command = bitstream.vivado_command(Path("/opt/vivado"), verilog=tmp_path / "top.v",
                                       top="spikeformer_accel", out=tmp_path, clock_mhz=125, jobs=3)
    args = dict(zip(names, command[command.index("-tclargs") + 1:], strict=True))
    assert args == {
        "verilog": str(tmp_path / "top.v"), "top": "spikeformer_accel", "out_dir": str(tmp_path),
        "overlay": bitstream.OVERLAY_NAME, "ip_inst": bitstream.IP_INSTANCE,
        "dma_inst": bitstream.DMA_INSTANCE,
        "part": "xc7z020clg400-1", "length_width": str(bitstream.DMA_LENGTH_WIDTH), "clock_mhz": "125",
        "jobs": "3",
    }
    # One sample of hw-gesture's size must fit a DMA transfer: 2**26 - 1 bytes.
    assert bitstream.DMA_LENGTH_WIDTH >= 23


def test_bitstream_stops_at_once_without_vivado(tmp_path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}   # python, but no vivado
    out = tmp_path / "board"
    done = subprocess.run([sys.executable, "-m", "host.bitstream", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "vivado is not on PATH" in done.stderr and "settings64.sh" in done.stderr
    assert not out.exists()      # nothing generated


def make(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``(status, stdout with continuation lines joined, stderr)`` of make on board/targets.mk."""
    wrapper = cwd / "Makefile.test"
    wrapper.write_text(f"PY := {sys.executable}\nBUILD := build\nEXPORT := build/export/x\n"
                       f"setup:\n\t@true\ninclude {ROOT / 'board' / 'targets.mk'}\n")
    done = subprocess.run(["make", "-f", str(wrapper), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, re.sub(r"\s*\\\n\s*", " ", done.stdout), done.stderr


def test_make_targets(tmp_path) -> None:
    status, out, err = make("-n", "bitstream", "CLOCK_MHZ=125", cwd=tmp_path)
    assert status == 0, err
    assert "-m host.bitstream --config pynq-z2 --clock-mhz 125 --jobs 4 --out build/board" in out
    status, out, err = make("deploy", cwd=tmp_path)
    assert status != 0 and "usage: make deploy BOARD=" in err
    status, out, err = make("-n", "deploy", "BOARD=xilinx@pynq", cwd=tmp_path)
    assert status == 0, err
    assert ("-m host.deploy --board xilinx@pynq --export build/export/x/export --overlay-dir build/board"
            in out), out


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("deploy")
    model = random_int_model(21)
    x = random_input(model, 2, seed=1)
    export = write_export(model, base / "export", vectors=make_test_vectors(model, x, [0, 1]))
    overlay = base / "overlay"
    overlay.mkdir()
    for suffix in ("bit", "hwh"):
        (overlay / f"{bitstream.OVERLAY_NAME}.{suffix}").write_bytes(b"fake " + suffix.encode())
    return deploy.stage(base / "stage", export=export, overlay_dir=overlay)


def test_deploy_stages_everything_the_board_runs(staged) -> None:
    for rel in ("host/run.py", "host/backends/pynq_backend.py", "hw/accel/compiler.py", "golden/export.py",
                "overlay/spikeformer.bit", "overlay/spikeformer.hwh", "export/manifest.json",
                "vendor/amaranth/__init__.py", "vendor/jschon/__init__.py"):
        assert (staged / rel).is_file(), rel
    assert not list(staged.rglob("__pycache__")) and not list(staged.rglob("*.pt"))
    # The staged tree imports on its own: the board's packages come from it, not from this checkout.
    probe = ("import sys; sys.path[:0] = ['vendor', '.']; import host.run, host.backends.pynq_backend, "
             "hw.accel.compiler, golden.export, amaranth; "
             "print(host.run.__file__, amaranth.__file__)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=staged, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(path.startswith(str(staged)) for path in done.stdout.split())


def test_deploy_remote_command_and_errors(tmp_path, capsys) -> None:
    command = deploy.remote_run_command("spikeformer", python="python3", config="pynq-z2", samples=8,
                                        clock_mhz=100)
    assert command.startswith("cd spikeformer && export PYTHONPATH=")
    assert "-m host.run --export export --backend pynq --overlay overlay/spikeformer.bit" in command
    assert "--samples 8" in command
    assert deploy.main(["--export", str(tmp_path), "--stage-only"]) == 2
    assert "not an export directory" in capsys.readouterr().err
    assert deploy.main(["--export", str(tmp_path)]) == 2
    assert "--board" in capsys.readouterr().err
