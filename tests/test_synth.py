"""Yosys synthesis of a small PE configuration and the resource-table parsing.

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
    assert (r.lut, r.ff, r.carry4, r.dsp, r.bram36) == (3 + 4 + 2 + 4, 6, 2, 1, 2.5)
    use = r.utilisation(synth.XC7Z020)
    assert use["lut"] == pytest.approx(100 * 13 / 53_200)
    assert use["dsp"] == pytest.approx(100 / 220)
    assert use["bram36"] == pytest.approx(100 * 2.5 / 140)


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
    assert resources.lut > 0 and resources.ff > 0 and resources.carry4 > 0
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
