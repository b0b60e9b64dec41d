"""The board-side tests: they run in the board environment, what a PYNQ image has.

``make test`` builds ``.venv-board`` from the lock's board section (pynq 3.1.2, numpy 1.26,
pytest; no torch, Amaranth or cocotb) and runs this directory there with
``--confcutdir tests/board``, so the suite's tests/conftest.py (which imports torch) is not
loaded. The project is not installed in that environment: the repository root (the pure
packages ``contract``, ``protocol`` and ``host``) and tests/ (the fakes and the
numpy-only model factory) go on ``sys.path`` here.

In the project's main environment pynq is absent (it pins numpy 1.26) and this directory
is left out of collection: its tests belong to the board environment, where they all run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for path in (str(TESTS.parent), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

if importlib.util.find_spec("pynq") is None:
    collect_ignore_glob = ["test_*.py"]
