"""The folders show the flow: imports go one way, torch and Amaranth stay on their side, no cycles.

The rules and the analysis are ``scripts/import_graph.py`` (which also prints the graph);
these tests hold the tree to them and show the analysis catches what it claims to.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_the_tree_follows_the_layering(graph) -> None:
    assert graph.violations(graph.all_imports()) == []


def test_every_package_is_checked(graph) -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(graph.PACKAGES)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in ("contract", "golden", "protocol", "hw", "sim", "host"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_backward_import_is_reported(graph, tmp_path: Path) -> None:
    root = _tree(tmp_path, {"hw/core.py": "def f():\n    from sim import bench\n"})
    (problem,) = graph.violations(graph.all_imports(root))
    assert "hw.core (line 2) imports sim" in problem


@pytest.mark.parametrize(
    ("name", "text", "culprit"),
    [
        ("host/run.py", "import torch\n", "torch belongs to golden only"),
        ("protocol/perf.py", "from amaranth.hdl import Signal\n", "amaranth belongs to hw, sim only"),
        ("hw/top.py", "import cocotb\n", "cocotb belongs to sim only"),
    ],
)
def test_a_confined_import_outside_its_side_is_reported(graph, tmp_path, name, text, culprit) -> None:
    root = _tree(tmp_path, {name: text})
    (problem,) = graph.violations(graph.all_imports(root))
    assert culprit in problem


def test_a_module_level_cycle_is_reported_and_a_lazy_one_is_not(graph, tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "protocol/a.py": "from protocol import b\n",
            "protocol/b.py": "from protocol.a import x\n",
            "protocol/c.py": "def f():\n    from protocol import d\n",
            "protocol/d.py": "from protocol import c\n",
        },
    )
    assert graph.violations(graph.all_imports(root)) == ["import cycle: protocol.a -> protocol.b"]
