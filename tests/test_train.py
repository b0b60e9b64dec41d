"""Training: the loop lowers the loss, resume is bit-identical, DDP on gloo keeps ranks in sync.

Runs ``hw-tiny`` on small seeded subsets of the digits with one thread per process, so the
whole module takes well under a minute on two shared cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from golden.checkpoint import CheckpointError, load_checkpoint, load_model
from golden.data import build_dataset
from golden.distributed import DistContext
from golden.engine import Amp, LRSchedule, build_optimizer, train_one_epoch
from golden.mixing import Mixer
from golden.models import create_model
from golden.runlog import TIME_KEYS
from golden.train import ResumeError, run

REPO = Path(__file__).resolve().parents[1]
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend=None)

# Small and fast, but with warm-up, cosine, label smoothing, mixup and cutmix all active,
# so the resume test covers every stateful or random part of the loop.
TINY = [
    "--preset", "hw-tiny", "--data", "digits", "--train-limit", "96", "--test-limit", "48",
    "--batch-size", "16", "--max-steps-per-epoch", "3", "--warmup-epochs", "0.5", "--lr", "3e-3",
    "--label-smoothing", "0.1", "--mixup", "0.4", "--cutmix", "1.0", "--threads", "1", "--seed", "7",
]  # fmt: skip


def _digits_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = build_dataset("digits", None, "train", timesteps=4)
    return ds.images[:n].clone(), ds.targets[:n].clone()


def test_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = create_model("hw-tiny")
    x, y = _digits_batch(64)
    loader = [(x[i : i + 32], y[i : i + 32]) for i in (0, 32)]
    opt = build_optimizer(model, opt="adamw", lr=4e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, LRSchedule(total_steps=20, warmup_steps=0, steps_per_epoch=2)
    )
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    mixer = Mixer(num_classes=10)

    def loss_now() -> float:
        model.train()  # batch statistics in BN, as during the steps
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))

    before = loss_now()
    for _ in range(10):
        metrics = train_one_epoch(
            model,
            loader,
            optimizer=opt,
            scheduler=sched,
            scaler=scaler,
            mixer=mixer,
            rng=np.random.default_rng(0),
            ctx=CPU,
            amp=Amp(),
            steps=2,
        )
    after = loss_now()
    assert math.isfinite(after) and after < 0.8 * before, (before, after)
    assert metrics["train_samples"] == 64
    assert sched.last_epoch == 20


def _strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run([*TINY, "--epochs", "2", "--out", str(straight)])
    run([*TINY, "--epochs", "2", "--stop-after", "1", "--out", str(resumed)])
    assert load_checkpoint(resumed / "checkpoint.pt")["epoch"] == 1
    run([*TINY, "--epochs", "2", "--resume", "--out", str(resumed)])

    a = load_checkpoint(straight / "checkpoint.pt")
    b = load_checkpoint(resumed / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        for key in pa:
            assert torch.equal(torch.as_tensor(pa[key]), torch.as_tensor(pb[key])), key
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert _strip_times(a["metrics"]) == _strip_times(b["metrics"])
    # The training really moved: epoch 2 differs from epoch 1, so equality above is not vacuous.
    assert a["metrics"][0]["train_loss"] != a["metrics"][1]["train_loss"]
    rows_a = json.loads((straight / "metrics.json").read_text())["epochs"]
    rows_b = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert _strip_times(rows_a) == _strip_times(rows_b)


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    run([*TINY, "--epochs", "2", "--stop-after", "1", "--out", str(tmp_path)])
    changed_lr = [*TINY, "--lr", "1e-2"]  # argparse: the last occurrence wins
    with pytest.raises(ResumeError, match="--lr"):
        run([*changed_lr, "--epochs", "2", "--resume", "--out", str(tmp_path)])
    with pytest.raises(ResumeError, match="timesteps"):
        run([*TINY, "--timesteps", "2", "--epochs", "2", "--resume", "--out", str(tmp_path)])


def test_run_files_and_checkpoint_meta(tmp_path: Path) -> None:
    summary = run([*TINY, "--epochs", "1", "--out", str(tmp_path)])
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png", "firing_rates.csv",
                 "firing_rates.png", "summary.json", "train.log"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0, name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    model, meta = load_model(tmp_path / "checkpoint.pt")
    assert meta["preset"] == "hw-tiny" and meta["data"] == "digits" and meta["epoch"] == 1
    assert meta["data_kwargs"]["timesteps"] == model.cfg.timesteps
    assert meta["args"]["mixup"] == 0.4 and meta["args"]["world_size"] == 1
    assert summary["final_test_acc"] == meta["metrics"][-1]["test_acc"]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "test_acc" in header and "fr:blocks.0.mlp.fc1.lif" in header
    # Nothing generated holds absolute paths.
    for name in ("metrics.json", "summary.json", "metrics.csv"):
        assert str(tmp_path) not in (tmp_path / name).read_text()


def test_bad_requests_fail_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training augmentation"):
        run([*TINY, "--augment", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--amp needs a CUDA device"):
        run([*TINY, "--amp", "--device", "cpu", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="3 classes but dataset 'digits' has 10"):
        run([*TINY, "--set", "num_classes=3", "--out", str(tmp_path)])
    with pytest.raises(CheckpointError, match="no such file"):
        run([*TINY, "--resume", "--out", str(tmp_path / "nothing-here")])
    assert not (tmp_path / "checkpoint.pt").exists()


def test_lr_schedule_shapes() -> None:
    cos = LRSchedule(
        total_steps=100, warmup_steps=10, steps_per_epoch=10, warmup_start=0.1, min_lr_ratio=0.05
    )
    assert cos(0) == pytest.approx(0.1) and cos(5) == pytest.approx(0.55) and cos(10) == pytest.approx(1.0)
    assert cos(55) == pytest.approx(0.05 + 0.95 * 0.5) and cos(100) == pytest.approx(0.05)
    step = LRSchedule(
        total_steps=100, warmup_steps=0, steps_per_epoch=10, sched="step", step_size=3, gamma=0.5
    )
    assert [step(s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="sched"):
        LRSchedule(total_steps=1, warmup_steps=0, steps_per_epoch=1, sched="linear")


def test_cutmix_pastes_the_area_its_targets_say() -> None:
    # Sample 0 is black, sample 1 white: the white share of mixed sample 0 is exactly 1 - lam.
    x = torch.stack([torch.zeros(1, 8, 8), torch.full((1, 8, 8), 255.0)])
    y = torch.tensor([3, 5])
    mixer = Mixer(num_classes=10, cutmix_alpha=1.0)
    for seed in range(5):
        mixed, targets = mixer(x, y, np.random.default_rng(seed))
        assert torch.equal(mixed, mixed.round())  # integer inputs stay integers
        assert torch.allclose(targets.sum(-1), torch.ones(2))
        white = float((mixed[0] == 255).float().mean())
        assert float(targets[0, 5]) == pytest.approx(white) and float(targets[0, 3]) == pytest.approx(
            1 - white
        )


def test_mixup_with_label_smoothing_targets() -> None:
    x, y = _digits_batch(4)
    mixed, targets = Mixer(num_classes=10, mixup_alpha=0.5, label_smoothing=0.2)(
        x, y, np.random.default_rng(1)
    )
    assert torch.allclose(targets.sum(-1), torch.ones(4))
    assert float(targets.min()) == pytest.approx(0.02)  # smoothing / classes off target
    lam = (mixed[0] - x[3]) / (x[0] - x[3])
    lam = lam[torch.isfinite(lam)]
    assert torch.allclose(lam, lam[0].expand_as(lam), atol=1e-4)


DDP_ARGS = [
    "--preset", "hw-tiny", "--train-limit", "64", "--test-limit", "31", "--batch-size", "8",
    "--max-steps-per-epoch", "2", "--epochs", "1", "--threads", "1", "--check-sync", "--device", "cpu",
]  # fmt: skip


@pytest.mark.slow  # two fresh interpreters importing torch: ~30 s on two busy cores
def test_ddp_gloo_two_processes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "golden.train", *DDP_ARGS, "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    row = metrics["epochs"][0]
    assert metrics["config"]["world_size"] == 2
    assert row["ranks_in_sync"] is True
    assert row["train_samples"] == 2 * 8 * 2  # steps x batch x ranks
    assert row["test_samples"] == 31  # an odd split: every sample counted exactly once
    _, meta = load_model(tmp_path / "checkpoint.pt")  # DDP wrapper stripped: loads into the bare model
    assert meta["args"]["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == ["best.pt", "checkpoint.pt"]
