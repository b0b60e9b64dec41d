"""Evaluation CLI, firing-rate recording and checkpoint validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from golden.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from golden.data import build_dataset
from golden.eval import main as eval_main
from golden.eval import run as eval_run
from golden.firing import FiringRecorder, lif_layers, pick_layers
from golden.models import create_model
from golden.train import run as train_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained hw-tiny run, evaluated on the full digits test split."""
    out = tmp_path_factory.mktemp("run")
    train_run(
        [
            "--preset",
            "hw-tiny",
            "--data",
            "digits",
            "--train-limit",
            "128",
            "--batch-size",
            "32",
            "--max-steps-per-epoch",
            "4",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    return out


def test_eval_cli_writes_its_files(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    summary = eval_run(
        ["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(out), "--raster-layers", "3"]
    )
    for name in ("firing_rates.png", "raster.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    saved = json.loads((out / "eval.json").read_text())
    assert saved["top1"] == pytest.approx(summary["top1"])
    # Same model, same full test split, same evaluation code: the accuracy the training logged.
    final = json.loads((trained / "metrics.json").read_text())["epochs"][-1]
    assert saved["samples"] == final["test_samples"] == 359
    assert saved["top1"] == pytest.approx(final["test_acc"])
    assert saved["firing_rates"] == pytest.approx(final["firing_rates"])
    model, _ = load_model(trained / "checkpoint.pt")
    names = [n for n, _ in lif_layers(model)]
    assert list(saved["firing_rates"]) == names
    rows = (out / "firing_rates.csv").read_text().splitlines()
    assert rows[0] == "layer,neurons,spikes,neuron_steps,rate" and len(rows) == len(names) + 1
    rasters = np.load(out / "raster.npz")
    assert sorted(rasters.files) == sorted(pick_layers(names, 3)) == sorted(saved["raster"]["layers"])
    for key in rasters.files:
        assert rasters[key].shape[0] == model.cfg.timesteps and rasters[key].shape[1] <= 64
        assert set(np.unique(rasters[key])) <= {0, 1}
    per_class = saved["per_class_top1"]
    assert len(per_class) == 10 and all(v is None or 0 <= v <= 100 for v in per_class.values())


def test_eval_named_raster_layers_and_limit(trained: Path, tmp_path: Path) -> None:
    layers = "tokenizer.0.lif,blocks.0.mlp.fc1.lif"
    summary = eval_run(
        [
            "--checkpoint",
            str(trained / "checkpoint.pt"),
            "--out",
            str(tmp_path),
            "--limit",
            "20",
            "--raster-layers",
            layers,
            "--raster-sample",
            "19",
        ]
    )
    assert summary["samples"] == 20 and summary["raster"]["sample"] == 19
    assert sorted(np.load(tmp_path / "raster.npz").files) == sorted(layers.split(","))
    with pytest.raises(ValueError, match="unknown LIF layers"):
        eval_run(
            [
                "--checkpoint",
                str(trained / "checkpoint.pt"),
                "--out",
                str(tmp_path),
                "--raster-layers",
                "blocks.9.lif",
            ]
        )


def test_firing_rate_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = create_model("hw-tiny").eval()
    with torch.no_grad():  # an untrained model barely fires: widen the BN gains so every layer does
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.fill_(3.0)
    ds = build_dataset("digits", None, "test", timesteps=4)
    x = ds.images[:16]
    with torch.no_grad(), FiringRecorder(model) as rec:
        model(x)
        model(x[:5])
    stats = rec.stats()
    # The first tokenizer stage by hand: conv -> BN -> LIF on the input repeated T times.
    stage = model.tokenizer[0]
    with torch.no_grad():
        frames = (x / model.cfg.input_max).unsqueeze(0).expand(model.cfg.timesteps, -1, -1, -1, -1)
        current = stage.bn(stage.conv(frames.flatten(0, 1))).unflatten(0, (model.cfg.timesteps, 16))
        spikes = stage.lif(current)
    expected_spikes = float(spikes.sum()) + float(spikes[:, :5].sum())
    i = stats.layers.index("tokenizer.0.lif")
    assert float(stats.spikes[i]) == expected_spikes
    assert float(stats.steps[i]) == spikes[0, 0].numel() * model.cfg.timesteps * 21
    assert stats.rates()["tokenizer.0.lif"] == pytest.approx(expected_spikes / float(stats.steps[i]))
    assert expected_spikes > 0 and 0.0 < stats.mean_rate() < 1.0


# --------------------------------------------------------------------------- bad checkpoints


@pytest.fixture(scope="module")
def good_checkpoint(trained: Path) -> Path:
    return trained / "checkpoint.pt"


def test_missing_and_empty_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such file"):
        load_model(tmp_path / "nope.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: file is empty"):
        load_model(empty)


def test_corrupt_and_truncated_checkpoints(good_checkpoint: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pt: corrupt"):
        load_model(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: corrupt"):
        load_model(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not a golden.train checkpoint: missing keys"):
        load_model(foreign)


def test_checkpoint_that_does_not_fit_its_preset(good_checkpoint: Path, tmp_path: Path) -> None:
    state = load_checkpoint(good_checkpoint)
    state["model_overrides"] = {**state["model_overrides"], "embed_dim": 32}
    bad = tmp_path / "misfit.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"misfit\.pt: weights do not fit preset 'hw-tiny'"):
        load_model(bad)
    state["model_overrides"] = {"no_such_field": 1}
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="cannot rebuild model preset"):
        load_model(bad)


def test_eval_cli_reports_a_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 64)
    assert eval_main(["--checkpoint", str(bad), "--out", str(tmp_path / "e")]) == 2
    assert "broken.pt" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_save_is_atomic_and_plain(tmp_path: Path) -> None:
    model = create_model("hw-tiny", depth=1)
    path = save_checkpoint(
        tmp_path / "c.pt",
        model=model,
        preset="hw-tiny",
        model_overrides={"depth": 1},
        data="digits",
        data_kwargs={"timesteps": 4},
        epoch=0,
        metrics=[],
        args={},
    )
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    loaded, meta = load_model(path)  # weights_only=True load: only tensors and plain values inside
    assert meta["model_overrides"] == {"depth": 1} and len(loaded.blocks) == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    with pytest.raises(TypeError, match="args.when"):
        save_checkpoint(
            tmp_path / "d.pt",
            model=model,
            preset="hw-tiny",
            model_overrides={},
            data="digits",
            data_kwargs={},
            epoch=0,
            metrics=[],
            args={"when": object()},
        )
