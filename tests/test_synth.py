"""Yosys synthesis of a small PE configuration, the resource-table parsing and the device table.

The end-to-end test needs Debian's ``yosys`` (``make setup`` installs it) and is
skipped, saying so, only when it is absent; the parser tests always run.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from protocol.params import PE_CONFIGS
from sim import flow, synth

CONFIG = ("lif", "lif_l1_t4")

STAT = """{
   "creator": "Yosys 0.23",
   "modules": {"\\\\top": {"num_cells": 12, "num_cells_by_type": {"LUT2": 3}}},
   "design": {
      "num_cells": 12,
      "num_cells_by_type": {"BUFG": 1, "CARRY4": 2, "FDRE": 5, "FDSE": 1, "LUT2": 3, "LUT6": 4,
                            "SRLC32E": 2, "RAM64M": 1, "DSP48E1": 1, "RAMB18E1": 1, "RAMB36E1": 2}
   }
}"""


def test_parse_stat_counts_every_resource() -> None:
    r = synth.parse_stat(STAT)
    assert (r.lut, r.ff, r.carry, r.dsp, r.bram36, r.uram) == (3 + 4 + 2 + 4, 6, 2, 1, 2.5, 0)
    use = r.utilisation(synth.XC7Z020)
    assert use["lut"] == pytest.approx(100 * 13 / 53_200)
    assert use["dsp"] == pytest.approx(100 / 220)
    assert use["bram36"] == pytest.approx(100 * 2.5 / 140)


STAT_XCUP = """{
   "design": {
      "num_cells_by_type": {"CARRY8": 3, "FDRE": 7, "LUT6": 5, "RAM64M8": 1, "RAM32X16DR8": 1,
                            "DSP48E2": 2, "RAMB18E2": 1, "RAMB36E2": 4, "URAM288": 6}
   }
}"""


def test_parse_stat_counts_ultrascale_plus_cells() -> None:
    r = synth.parse_stat(STAT_XCUP)
    assert (r.lut, r.ff, r.carry, r.dsp, r.bram36, r.uram) == (5 + 8 + 8, 7, 2 * 3, 2, 4.5, 6)
    use = r.utilisation(synth.XCK26)
    assert use["uram"] == pytest.approx(100 * 6 / 64)
    assert use["carry"] == pytest.approx(100 * 6 / 29_280)
    assert use["dsp"] == pytest.approx(100 * 2 / 1_248)
    # URAM on a device without any can never fit.
    assert r.utilisation(synth.XC7Z020)["uram"] == float("inf")
    assert synth.parse_stat(STAT).utilisation(synth.XC7Z020)["uram"] == 0.0


def test_device_table_and_parts() -> None:
    assert synth.device_for_part("xc7z020clg400-1") is synth.XC7Z020
    assert synth.device_for_part("xck26-sfvc784-2LV-c") is synth.XCK26
    with pytest.raises(KeyError, match="no device table"):
        synth.device_for_part("xczu3eg-sbva484-1-i")
    assert synth.XC7Z020.synth_options == "-family xc7"
    assert synth.XCK26.synth_options == "-family xcup -uram"
    # The REFERENCE figures (K26: 117,120 LUT, 1,248 DSP, 144 BRAM36 + 64 URAM).
    k26 = synth.XCK26
    assert (k26.lut, k26.dsp, k26.bram36, k26.uram) == (117_120, 1_248, 144, 64)


def test_tables_name_the_device_cells(tmp_path: Path) -> None:
    row = synth.SynthRow("x", "accelerator", {"lanes": 64}, synth.parse_stat(STAT_XCUP), 0.0)
    md, csv_path = synth.write_tables([row], tmp_path / "up", device=synth.XCK26)
    text = md.read_text()
    assert "synth_xilinx -family xcup -uram, utilisation of xck26" in text
    assert "| LUT | FF | CARRY4 | DSP48E2 | BRAM36 | URAM |" in text
    with csv_path.open() as handle:
        (got,) = list(csv.DictReader(handle))
    assert got["URAM"] == "6" and float(got["URAM %"]) == pytest.approx(100 * 6 / 64, abs=0.01)
    # The 7-series table keeps its columns (no URAM).
    md, csv_path = synth.write_tables([row], tmp_path / "z", device=synth.XC7Z020)
    assert "| LUT | FF | CARRY4 | DSP48E1 | BRAM36 | LUT % |" in md.read_text()


def test_accelerator_fit_check_per_device() -> None:
    from protocol.config import ACCEL_CONFIGS
    from sim.accel import synth as accel_synth

    assert accel_synth.config_device(ACCEL_CONFIGS["pynq-z2"]) is synth.XC7Z020
    assert accel_synth.config_device(ACCEL_CONFIGS["kv260"]) is synth.XCK26
    assert accel_synth.config_device(ACCEL_CONFIGS["sim"]) is synth.XC7Z020
    fits = synth.Resources(lut=90_000, ff=1, carry=1, dsp=10, bram36=100, uram=64)
    assert accel_synth.misfits(fits, synth.XCK26) == []
    assert accel_synth.misfits(fits, synth.XC7Z020) == [
        "lut 169.2% > 80%",
        "uram inf% > 100%",
    ]
    over = synth.Resources(lut=1, ff=1, carry=1, dsp=1, bram36=1, uram=65)
    assert accel_synth.misfits(over, synth.XCK26) == ["uram 101.6% > 100%"]


def test_parse_stat_rejects_bad_output() -> None:
    with pytest.raises(synth.SynthError, match="not JSON"):
        synth.parse_stat("Printing statistics.")
    with pytest.raises(synth.SynthError, match="num_cells_by_type"):
        synth.parse_stat('{"design": {"num_cells": 3}}')
    with pytest.raises(synth.SynthError, match="generic cells"):
        synth.parse_stat('{"design": {"num_cells_by_type": {"$add": 1, "LUT2": 1}}}')


@pytest.mark.slow
@pytest.mark.synth
def test_synth_small_config(tmp_path: Path) -> None:
    if shutil.which("yosys") is None and not Path("/usr/bin/yosys").is_file():
        pytest.skip("yosys is not installed (apt-get install -y yosys, or make setup)")
    kind, name = CONFIG
    params = PE_CONFIGS[kind][name]
    verilog = flow.write_verilog(name, params, tmp_path / "rtl")
    resources = synth.synthesize(verilog, top=name, workdir=tmp_path / "synth")
    # A 4-step LIF lane: adders/comparators on carry chains, pipeline registers, no DSP or BRAM.
    assert resources.lut > 0 and resources.ff > 0 and resources.carry > 0
    assert resources.dsp == 0 and resources.bram36 == 0
    assert resources.utilisation()["lut"] < 1.0

    md, csv_path = synth.write_tables(
        [synth.SynthRow(name, kind, params.to_dict(), resources, 0.0)], tmp_path / "synth"
    )
    assert f"| {name} | lif |" in md.read_text()
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and int(rows[0]["LUT"]) == resources.lut and int(rows[0]["FF"]) == resources.ff


def test_synth_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synth.synthesize(tmp_path / "none.v", top="none", workdir=tmp_path)
