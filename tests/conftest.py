"""Suite-wide settings and the trained models shared between test modules.

The suite runs under pytest-xdist with one worker per core; more than one intra-op
thread per worker oversubscribes the cores and makes every torch op several times
slower, so each worker uses a single thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

torch.set_num_threads(1)


# --------------------------------------------------------------------------- shared trained models
@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A directory every xdist worker of this session sees (the workers' common parent)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def build_once(shared: Path, name: str, make: Callable[[Path], None]) -> Path:
    """``shared/name``, made by ``make`` exactly once per session across all workers."""
    target = shared / name
    with FileLock(str(target) + ".lock"):
        done = target / ".complete"
        if not done.is_file():
            target.mkdir(parents=True, exist_ok=True)
            make(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def tiny_checkpoint(shared_dir: Path) -> Path:
    """hw-tiny trained briefly on digits (tests/trained_models.py), saved as a checkpoint."""
    from golden.checkpoint import save_checkpoint
    from golden.data import build_dataset

    from trained_models import TINY_RECIPE, train_briefly

    def make(out: Path) -> None:
        model = train_briefly("hw-tiny", build_dataset("digits", None, "train", timesteps=4), **TINY_RECIPE)
        save_checkpoint(
            out / "checkpoint.pt",
            model=model,
            preset="hw-tiny",
            model_overrides={},
            data="digits",
            data_kwargs={"timesteps": 4},
            epoch=TINY_RECIPE["epochs"],
            metrics=[],
            args={},
        )

    return build_once(shared_dir, "hw-tiny-digits", make) / "checkpoint.pt"


@pytest.fixture(scope="session")
def tiny_export(shared_dir: Path, tiny_checkpoint: Path) -> Path:
    """The integer export of :func:`tiny_checkpoint` with 32 test-split vectors."""
    from torch.utils.data import DataLoader

    from contract.manifest import make_test_vectors, write_export
    from golden.checkpoint import load_model
    from golden.data import build_dataset
    from golden.quantize import FakeQuantModel, to_int_model

    def make(out: Path) -> None:
        model, _ = load_model(tiny_checkpoint)
        int_model = to_int_model(FakeQuantModel(model), event=False)
        x, y = next(iter(DataLoader(build_dataset("digits", None, "test", timesteps=4), batch_size=32)))
        write_export(int_model, out / "export", vectors=make_test_vectors(int_model, x, y))

    return build_once(shared_dir, "hw-tiny-digits-export", make) / "export"
