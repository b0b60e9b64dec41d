"""Board flow without a board or Vivado: TCL vs generated top, ``make bitstream`` / ``deploy`` plumbing.

* The Vivado script and the generated accelerator top agree on every port and
  interface name: the ports are parsed from the Verilog that
  :func:`sim.accel.rtl.write_top` writes (the ``sim`` configuration: port names and widths do
  not depend on the configuration, and the ``pynq-z2`` top takes minutes to generate),
  the names from the ``set`` lines of board/bitstream.tcl, and every accelerator pin
  the block design connects must be one of them. The accelerator side of the block design is
  one piece of script for both families (Zynq-7000, Zynq UltraScale+); each family's
  processing system sets the same PS pin names, and the ZynqMP one uses the ports the issue
  names (``zynq_ultra_ps_e``, HPM0_FPD, HP0_FPD, pl_clk0 at the configuration's clock).
* :mod:`host.bitstream` stops at once, before generating anything, without ``vivado``, for
  both families; configuration and part resolve to each other (``ACCEL_CONFIG``, ``BOARD_PART``).
* The make targets pass the right arguments (the clock only as an override of the
  configuration's); ``deploy`` stages a directory that runs on a board's Python (the pure
  packages ``contract``, ``protocol``, ``host``, the overlay and the export).
* The board runtime is pure: ``host.run --backend pynq`` (load an export, compile, pack,
  drive, unpack, verify) on a fake board, in a fresh interpreter whose import system refuses
  ``amaranth``, ``torch``, ``cocotb``, ``golden``, ``hw`` and ``sim``, exits 0 bit-exact and
  loads no third-party module besides numpy and pynq.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contract.manifest import make_test_vectors, write_export
from host import bitstream, deploy
from protocol import regmap
from protocol.config import STREAM_BITS, get_config

from intmodel_factory import random_input, random_int_model

ROOT = Path(__file__).resolve().parents[1]
TCL = (ROOT / "board" / "bitstream.tcl").read_text()
_PORT = re.compile(
    r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
    r"([A-Za-z_][A-Za-z0-9_$]*)\s*;"
)


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
    for line in text[start.end() : end].splitlines():
        match = _PORT.match(line)
        if match:
            direction, high, low, name = match.groups()
            ports[name] = (direction, 1 if high is None else int(high) - int(low) + 1)
    return ports


@pytest.fixture(scope="module")
def top_ports() -> dict[str, tuple[str, int]]:
    from host.backends.native_backend import DEFAULT_ROOT, top_for_config

    files, _ = top_for_config("sim", ROOT / DEFAULT_ROOT)
    return verilog_ports(files.verilog.read_text(), files.toplevel)


AXI_LITE = {  # signal -> (direction seen from the slave, width or None for "any")
    "awaddr": ("input", regmap.ADDRESS_BITS),
    "awvalid": ("input", 1),
    "awready": ("output", 1),
    "wdata": ("input", 32),
    "wstrb": ("input", 4),
    "wvalid": ("input", 1),
    "wready": ("output", 1),
    "bresp": ("output", 2),
    "bvalid": ("output", 1),
    "bready": ("input", 1),
    "araddr": ("input", regmap.ADDRESS_BITS),
    "arvalid": ("input", 1),
    "arready": ("output", 1),
    "rdata": ("output", 32),
    "rresp": ("output", 2),
    "rvalid": ("output", 1),
    "rready": ("input", 1),
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
    assert "ACTIVE_LOW" in TCL and reset.endswith("n")  # the TCL declares the reset active low
    expected = {clock: top_ports[clock], reset: top_ports[reset]}
    for variable, signals in (
        ("CONTROL_INTF", AXI_LITE),
        ("STREAM_IN_INTF", stream(True, bits)),
        ("STREAM_OUT_INTF", stream(False, bits)),
    ):
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
    for key, value in (
        ("c_m_axis_mm2s_tdata_width", "$STREAM_BITS"),
        ("c_s_axis_s2mm_tdata_width", "$STREAM_BITS"),
        ("c_sg_length_width", "$length_width"),
        ("c_include_sg", "0"),
    ):
        assert re.search(rf"CONFIG\.{key} {re.escape(value)}\b", TCL), key


@pytest.mark.parametrize(
    ("part", "family", "board"),
    [
        (None, "zynq", "*pynq-z2*"),
        ("xck26-sfvc784-2LV-c", "zynqmp", "*kv260_som*"),
        ("xczu3eg-sbva484-1-i", "zynqmp", "-"),
    ],
)
def test_tcl_arguments_match_the_wrapper(tmp_path, part, family, board) -> None:
    names = re.search(r"^lassign \$argv (.+)$", TCL, re.MULTILINE).group(1).split()
    assert f"[llength $argv] != {len(names)}" in TCL
    command = bitstream.vivado_command(
        Path("/opt/vivado"),
        verilog=tmp_path / "top.v",
        top="spikeformer_accel",
        out=tmp_path,
        clock_mhz=125,
        jobs=3,
        **({} if part is None else {"part": part}),
    )
    args = dict(zip(names, command[command.index("-tclargs") + 1 :], strict=True))
    assert args == {
        "verilog": str(tmp_path / "top.v"),
        "top": "spikeformer_accel",
        "out_dir": str(tmp_path),
        "overlay": bitstream.OVERLAY_NAME,
        "ip_inst": bitstream.IP_INSTANCE,
        "dma_inst": bitstream.DMA_INSTANCE,
        "part": part or "xc7z020clg400-1",
        "family": family,
        "board_glob": board,
        "length_width": str(bitstream.DMA_LENGTH_WIDTH),
        "clock_mhz": "125",
        "jobs": "3",
    }
    # One sample of hw-gesture's size must fit a DMA transfer: 2**26 - 1 bytes.
    assert bitstream.DMA_LENGTH_WIDTH >= 23


def ps_branches() -> dict[str, str]:
    """The TCL of each family's processing system (step 2a), by family."""
    zynq = re.search(r'^if \{\$family eq "zynq"\} \{\n(.*?)^\} else \{\n(.*?)^\}\n', TCL, re.M | re.S)
    assert zynq, "board/bitstream.tcl has no zynq / zynqmp switch for the processing system"
    return {"zynq": zynq.group(1), "zynqmp": zynq.group(2)}


PS_NAMES = ("PS_CLOCK", "PS_RESETN", "PS_CONTROL", "PS_MEMORY", "PS_BUS_CLOCKS")


def test_both_families_share_the_accelerator_side() -> None:
    branches = ps_branches()
    for family, text in branches.items():
        names = re.findall(r"^\s*set (PS_\w+) ", text, re.M)
        assert tuple(names) == PS_NAMES, family
        # No accelerator, DMA or interconnect pin inside a branch: that part is shared.
        assert "$ip_inst" not in text and "$dma_inst" not in text and "axi_interconnect" not in text, family
    shared = TCL.replace(branches["zynq"], "").replace(branches["zynqmp"], "")
    # Outside the branches the processing system is reached only through the PS_* names.
    assert "processing_system7_0/" not in shared and "zynq_ultra_ps_e_0/" not in shared
    for name in PS_NAMES:
        assert f"${name}" in shared, name
    # Packaging happens once (no copy per family).
    assert TCL.count("ipx::package_project") == 1 and TCL.count("launch_runs impl_1") == 1


def test_zynqmp_processing_system_ports() -> None:
    text = ps_branches()["zynqmp"]
    assert "xilinx.com:ip:zynq_ultra_ps_e" in text
    sets = dict(re.findall(r"^\s*set (PS_\w+) (.+)$", text, re.M))
    assert sets["PS_CONTROL"] in ("zynq_ultra_ps_e_0/M_AXI_HPM0_FPD", "zynq_ultra_ps_e_0/M_AXI_HPM0_LPD")
    assert sets["PS_MEMORY"] == "zynq_ultra_ps_e_0/S_AXI_HP0_FPD"
    assert sets["PS_CLOCK"] == "zynq_ultra_ps_e_0/pl_clk0"
    assert sets["PS_RESETN"] == "zynq_ultra_ps_e_0/pl_resetn0"
    # The ports that are used are switched on (HPM0_FPD is M_AXI_GP0, HP0_FPD is S_AXI_GP2), at
    # the stream width and the configuration's clock.
    for key, value in (
        ("PSU__USE__M_AXI_GP0", "1"),
        ("PSU__USE__S_AXI_GP2", "1"),
        ("PSU__SAXIGP2__DATA_WIDTH", "$STREAM_BITS"),
        ("PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", "$clock_mhz"),
        ("PSU__FPGA_PL0_ENABLE", "1"),
    ):
        assert re.search(rf"CONFIG\.{key} {re.escape(value)}\b", text), key
    zynq = ps_branches()["zynq"]
    assert re.search(r"CONFIG\.PCW_FPGA0_PERIPHERAL_FREQMHZ \$clock_mhz\b", zynq)


def test_targets_resolve_from_configuration_or_part() -> None:
    assert bitstream.resolve_target(None, None) == ("pynq-z2", "xc7z020clg400-1")
    assert bitstream.resolve_target("kv260", None) == ("kv260", "xck26-sfvc784-2LV-c")
    assert bitstream.resolve_target(None, "xck26-sfvc784-2LV-c") == ("kv260", "xck26-sfvc784-2LV-c")
    assert bitstream.resolve_target(None, "xc7z020clg400-1") == ("pynq-z2", "xc7z020clg400-1")
    # Both given: taken as they are (pynq-z2's smaller datapath on a ZCU104's part).
    assert bitstream.resolve_target("pynq-z2", "xczu7ev-ffvc1156-2-e") == ("pynq-z2", "xczu7ev-ffvc1156-2-e")
    assert bitstream.ps_family("xczu7ev-ffvc1156-2-e") == "zynqmp"
    for config, part, match in (
        ("nope", None, "unknown accelerator configuration"),
        ("sim", None, "has no board part"),
        (None, "xczu3eg-sbva484-1-i", "no accelerator configuration is built for part"),
        ("pynq-z2", "xcvu9p-flga2104-2-i", "neither a Zynq-7000"),
    ):
        with pytest.raises(bitstream.TargetError, match=match):
            bitstream.resolve_target(config, part)


@pytest.mark.parametrize(
    "target", [[], ["--config", "kv260"], ["--part", "xck26-sfvc784-2LV-c"], ["--config", "x"]]
)
def test_bitstream_stops_at_once_without_vivado(tmp_path, target) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, but no vivado
    out = tmp_path / "board"
    done = subprocess.run(
        [sys.executable, "-m", "host.bitstream", "--out", str(out), *target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    if target == ["--config", "x"]:
        assert "unknown accelerator configuration 'x'" in done.stderr
    else:
        assert "vivado is not on PATH" in done.stderr and "settings64.sh" in done.stderr
    assert not out.exists()  # nothing generated


def make(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``(status, stdout with continuation lines joined, stderr)`` of make on board/targets.mk."""
    wrapper = cwd / "Makefile.test"
    wrapper.write_text(
        f"PY := {sys.executable}\nBUILD := build\nEXPORT := build/export/x\n"
        f"setup:\n\t@true\ninclude {ROOT / 'board' / 'targets.mk'}\n"
    )
    done = subprocess.run(
        ["make", "-f", str(wrapper), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return done.returncode, re.sub(r"\s*\\\n\s*", " ", done.stdout), done.stderr


def test_make_targets(tmp_path) -> None:
    status, out, err = make("-n", "bitstream", "CLOCK_MHZ=125", cwd=tmp_path)
    assert status == 0, err
    assert "-m host.bitstream --config pynq-z2 --clock-mhz 125 --jobs 4 --out build/board" in out
    # Without an override the clock is the configuration's: make passes none of its own.
    for target in ("bitstream", "deploy"):
        status, out, err = make("-n", target, "BOARD=xilinx@pynq", cwd=tmp_path)
        assert status == 0 and "--clock-mhz" not in out, (target, out, err)
    status, out, err = make("deploy", cwd=tmp_path)
    assert status != 0 and "usage: make deploy BOARD=" in err
    status, out, err = make("-n", "deploy", "BOARD=xilinx@pynq", cwd=tmp_path)
    assert status == 0, err
    assert (
        "-m host.deploy --board xilinx@pynq --export build/export/x/export --overlay-dir build/board" in out
    ), out
    assert "--config pynq-z2" in out and "--part" not in out


def test_make_targets_for_the_zynqmp_board(tmp_path) -> None:
    # By configuration: its board part comes from protocol.config, make passes no part.
    for target in ("bitstream", "deploy"):
        status, out, err = make("-n", target, "ACCEL_CONFIG=kv260", "BOARD=ubuntu@kria", cwd=tmp_path)
        assert status == 0 and "--config kv260" in out and "--part" not in out, (target, out, err)
    # By part: host.bitstream / host.deploy pick the configuration built for it.
    for target in ("bitstream", "deploy"):
        status, out, err = make(
            "-n", target, "BOARD_PART=xck26-sfvc784-2LV-c", "BOARD=ubuntu@kria", cwd=tmp_path
        )
        assert status == 0 and "--part xck26-sfvc784-2LV-c" in out and "--config" not in out, (target, out)
    # Without vivado the bitstream target stops with the message and exit status 2 for both
    # families (PATH: this python and the system's make and shell, no vivado there).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    assert shutil.which("vivado", path=env["PATH"]) is None
    for variable in ("ACCEL_CONFIG=pynq-z2", "ACCEL_CONFIG=kv260", "BOARD_PART=xck26-sfvc784-2LV-c"):
        done = subprocess.run(
            [
                "make",
                "-f",
                str(tmp_path / "Makefile.test"),
                "bitstream",
                variable,
                f"BOARD_OUT={tmp_path / 'b'}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and "vivado is not on PATH" in done.stderr, (variable, done.stderr)
        assert not (tmp_path / "b").exists()
    # deploy resolves the same way: the board runs host.run with the part's configuration.
    assert deploy.main(["--export", str(tmp_path), "--part", "xczu3eg-sbva484-1-i", "--stage-only"]) == 2


def test_demo_runs_the_exports_vectors(tmp_path) -> None:
    # make demo stores the whole test split as test vectors and runs them: the run reads no
    # dataset (host.run has no --data-root) and takes the configuration's clock unless overridden.
    def lines(*args: str) -> list[str]:
        done = subprocess.run(
            ["make", "-n", "demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return re.sub(r"\s*\\\n\s*", " ", done.stdout).splitlines()

    commands = lines()
    (quantize,) = [line for line in commands if "-m golden.quantize" in line]
    (run,) = [line for line in commands if "-m host.run" in line]
    assert "--samples all" in quantize and "--samples all" in run
    assert "--data-root" not in run and "--clock-mhz" not in run
    (run,) = [line for line in lines("CLOCK_MHZ=50") if "-m host.run" in line]
    assert "--clock-mhz 50" in run
    from golden.quantize_run import build_parser

    argv = ["--checkpoint", "c.pt", "--out", str(tmp_path)]
    assert build_parser().parse_args([*argv, "--samples", "all"]).samples is None
    assert build_parser().parse_args([*argv, "--samples", "7"]).samples == 7
    assert build_parser().parse_args(argv).samples == 16


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
    for rel in (
        "host/run.py",
        "host/backends/pynq_backend.py",
        "protocol/compiler/builder.py",
        "contract/manifest.py",
        "overlay/spikeformer.bit",
        "overlay/spikeformer.hwh",
        "export/manifest.json",
    ):
        assert (staged / rel).is_file(), rel
    # Only the pure packages: nothing of the training side, the RTL or the simulators.
    assert sorted(path.name for path in staged.iterdir() if path.is_dir()) == sorted(
        [*deploy.PACKAGES, "overlay", "export"]
    )
    assert deploy.VENDORED == () and not (staged / "vendor").exists()
    assert not list(staged.rglob("__pycache__")) and not list(staged.rglob("*.pt"))
    # The staged tree imports on its own: the board's packages come from it, not from this checkout.
    probe = (
        "import sys; sys.path[:0] = ['vendor', '.']; import host.run, host.backends.pynq_backend, "
        "protocol.compiler.builder, contract.manifest; "
        "print(host.run.__file__, protocol.compiler.builder.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=staged, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert all(path.startswith(str(staged)) for path in done.stdout.split())


def test_deploy_remote_command_and_errors(tmp_path, capsys) -> None:
    command = deploy.remote_run_command(
        "spikeformer", python="python3", config="pynq-z2", samples=8, clock_mhz=100
    )
    assert command.startswith("cd spikeformer && export PYTHONPATH=")
    assert "-m host.run --export export --backend pynq --overlay overlay/spikeformer.bit" in command
    assert "--samples 8" in command
    assert "--clock-mhz 100" in command
    # Without an override the board run reports at the configuration's clock.
    default = deploy.remote_run_command("spikeformer", python="python3", config="pynq-z2", samples=8)
    assert "--clock-mhz" not in default
    assert deploy.main(["--export", str(tmp_path), "--stage-only"]) == 2
    assert "not an export directory" in capsys.readouterr().err
    assert deploy.main(["--export", str(tmp_path)]) == 2
    assert "--board" in capsys.readouterr().err


# ---------------------------------------------------------------------- the pure board runtime
#: Top-level packages the board runtime must never import (the training side, the RTL generator,
#: the simulators and the project packages that hold them).
BLOCKED = ("amaranth", "torch", "cocotb", "cocotbext", "golden", "hw", "sim")
#: Run in a fresh interpreter: block those imports, install the fake pynq, run host.run's main.
BOARD_RUN = """
import sys

BLOCKED = set(sys.argv[1].split(","))
attempts = []


class Refuse:
    \"\"\"A meta-path finder that makes every import of a blocked package fail (and records it).\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"the board runtime may not import {name}")
        return None


sys.meta_path.insert(0, Refuse())
before = set(sys.modules)
sys.path[:0] = [sys.argv[2], sys.argv[3]]
exec(sys.argv[4])  # the probe's extra statement ('' normally)
from host_fakes import install_fake_pynq
from protocol.config import get_config

install_fake_pynq(get_config(sys.argv[5]))
from host.run import main

status = main(sys.argv[6:])
allowed = {"numpy", "pynq", "contract", "protocol", "host", "host_fakes"}
extra = sorted(
    {name.partition(".")[0] for name in set(sys.modules) - before}
    - set(sys.stdlib_module_names)
    - allowed
)
if attempts or extra:
    print(f"blocked imports attempted: {attempts}; third-party modules loaded: {extra}", file=sys.stderr)
    status = 3
sys.exit(status)
"""


def run_board(export: Path, overlay: Path, tmp_path: Path, *, extra: str = "") -> subprocess.CompletedProcess:
    """``python -m host.run --backend pynq`` on the fake board in a fresh, import-restricted interpreter."""
    report = tmp_path / "report.json"
    argv = [
        *("--export", str(export), "--backend", "pynq", "--overlay", str(overlay)),
        *("--config", "sim", "--samples", "all", "--json", str(report)),
    ]
    tests = str(Path(__file__).resolve().parent)
    command = [sys.executable, "-c", BOARD_RUN, ",".join(BLOCKED), str(ROOT), tests, extra, "sim", *argv]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def board_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("board")
    model = random_int_model(31, groupings=("joint",))
    x = random_input(model, 3, seed=2)
    export = write_export(model, base / "export", vectors=make_test_vectors(model, x, [0, 1, 2]))
    overlay = base / f"{bitstream.OVERLAY_NAME}.bit"
    for path in (overlay, overlay.with_suffix(".hwh")):
        path.write_bytes(b"fake")
    return export, overlay


def test_board_runtime_imports_numpy_and_pynq_only(board_files, tmp_path) -> None:
    export, overlay = board_files
    done = run_board(export, overlay, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bit-exact yes (3/3 samples" in done.stdout
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["bit_exact"] and summary["samples"] == 3 and summary["backend"] == "pynq"
    assert summary["clock_mhz"] == get_config("sim").clock_mhz


@pytest.mark.parametrize("creeping", ["import host.backends.native_backend", "import golden.data"])
def test_board_runtime_check_catches_a_creeping_import(board_files, tmp_path, creeping) -> None:
    # The guard itself: a run that imports the simulated backend (Amaranth through sim) or the
    # training side (torch) does not pass.
    export, overlay = board_files
    done = run_board(export, overlay, tmp_path, extra=creeping)
    assert done.returncode != 0 and "may not import" in done.stderr, done.stderr


def test_pynq_extras_match_the_board_docs() -> None:
    # Which pynq goes with which family is stated twice (pyproject's extras, docs/board.md's
    # table): PYNQ 4.0 has no Pynq-Z2, so the Zynq-7000 extra must stay below it.
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    docs = (ROOT / "docs" / "board.md").read_text()
    for extra, family in (("board-z2", "Zynq-7000"), ("board-zynqmp", "Zynq UltraScale+")):
        (spec,) = extras[extra]
        row = next(line for line in docs.splitlines() if line.startswith(f"| {family} |"))
        assert f"`{extra}` (`{spec}`)" in row, (extra, row)
    assert extras["board-z2"] == ["pynq>=3.0,<3.2"]
