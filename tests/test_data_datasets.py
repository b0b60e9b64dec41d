"""Datasets end to end: digits split, synthetic files in the real DVS layouts read back
through the real readers, CSV slicing, splits, the frame cache, and layout errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import golden.data.cifar10dvs as cifar10dvs_module
import golden.data.gesture as gesture_module
from golden.data import DatasetLayoutError, build_dataset, dataset_info, list_datasets
from golden.data.aedat import read_aedat2
from golden.data.digits import load_digits_uint8
from golden.data.errors import LabelFileError
from golden.data.frames import events_to_frames, rescale_events
from golden.data.synthetic import main as synthetic_main
from golden.data.synthetic import write_cifar10dvs_layout, write_gesture_layout

torch.set_num_threads(1)


# ---------------------------------------------------------------- digits


def test_digits_split_is_stratified_deterministic_and_disjoint() -> None:
    images, labels = load_digits_uint8()
    train = build_dataset("digits", None, "train", timesteps=4)
    test = build_dataset("digits", None, "test", timesteps=4)
    assert (len(train), len(test)) == (1438, 359)
    assert set(train.indices.tolist()).isdisjoint(test.indices.tolist())
    assert len(train) + len(test) == len(labels) == 1797
    per_class = np.bincount(labels)
    np.testing.assert_array_equal(np.bincount(test.targets.numpy()), np.round(per_class * 0.2).astype(int))
    again = build_dataset("digits", None, "test", timesteps=16)
    np.testing.assert_array_equal(again.indices, test.indices)
    other = build_dataset("digits", None, "test", timesteps=4, seed=1)
    assert not np.array_equal(other.indices, test.indices)
    x, label = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(label, int)
    assert torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 255
    # round(p * 255 / 16): 16 -> 255, 8 -> 128 (half to even), 1 -> 16.
    assert set(np.unique(images).tolist()) <= {round(p * 255 / 16) for p in range(17)}
    assert images.max() == 255


def test_registry_and_info() -> None:
    assert set(list_datasets()) >= {
        "digits",
        "dvs128-gesture",
        "cifar10-dvs",
        "imagenet",
        "cifar10",
        "cifar100",
        "synthetic-events",
    }
    assert dataset_info("dvs128-gesture").num_classes == 11
    assert dataset_info("cifar10-dvs", size=48).shape == (2, 48, 48)
    assert dataset_info("digits").input_max == 255 and not dataset_info("digits").event
    assert dataset_info("imagenet").shape == (3, 224, 224) and not dataset_info("imagenet").integer_input
    assert dataset_info("synthetic-events", size=48, num_classes=11).shape == (2, 48, 48)
    with pytest.raises(KeyError, match="known datasets"):
        build_dataset("mnist", None, "train", timesteps=4)
    with pytest.raises(ValueError, match="split"):
        build_dataset("digits", None, "val", timesteps=4)
    with pytest.raises(ValueError, match="timesteps"):
        build_dataset("digits", None, "train", timesteps=0)
    with pytest.raises(ValueError, match="root"):
        build_dataset("dvs128-gesture", None, "train", timesteps=4)


# ---------------------------------------------------------------- DVS128 Gesture


@pytest.fixture(scope="module")
def gesture_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("gesture")
    return root, write_gesture_layout(root, samples_per_class=3, size=32, seed=5)


def expected_frames(events: np.ndarray, window, *, timesteps: int, split_by: str, size: int) -> np.ndarray:
    if window is not None:
        events = events[(events["t"] >= window[0]) & (events["t"] < window[1])]
    events = rescale_events(events, sensor=(128, 128), size=(size, size))
    return events_to_frames(events, timesteps=timesteps, split_by=split_by, height=size, width=size)


@pytest.mark.parametrize(("split_by", "size"), [("number", 128), ("time", 64)])
def test_gesture_slices_csv_windows_and_splits_by_trial_lists(gesture_root, split_by: str, size: int) -> None:
    root, written = gesture_root
    for split, n_samples in (("train", 22), ("test", 11)):  # 2 train trials, 1 test trial, 11 gestures each
        ds = build_dataset(
            "dvs128-gesture", root, split, timesteps=8, split_by=split_by, size=size, progress=False
        )
        truth = [(rec, s) for rec in written if rec.split == split for s in rec.samples]
        assert len(ds) == len(truth) == n_samples
        assert sorted(ds.targets) == sorted(s.label for _, s in truth)
        if split == "train":
            assert set(ds.targets) == set(range(11))
        for i, (rec, sample) in enumerate(truth):
            assert ds.samples[i] == sample
            x, label = ds[i]
            assert label == sample.label and x.shape == (8, 2, size, size) and x.dtype == torch.float32
            want = expected_frames(rec.events, sample.window, timesteps=8, split_by=split_by, size=size)
            np.testing.assert_array_equal(x.numpy(), want)
        # Idle noise between gestures lies outside every CSV window.
        rec = truth[0][0]
        inside = sum(int(ds[i][0].sum()) for i, (r, _) in enumerate(truth) if r is rec)
        assert 0 < inside < len(rec.events)


def test_gesture_cache_is_reused(gesture_root, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = gesture_root
    first = build_dataset("dvs128-gesture", root, "test", timesteps=4, progress=False)
    files = sorted(first.cache_dir.glob("*.npz"))
    assert len(files) == len(first) and first.cache_dir.parent == root
    stamps = [f.stat().st_mtime_ns for f in files]

    def no_reading(path):
        raise AssertionError(f"events re-read from {path}")

    monkeypatch.setattr(gesture_module, "read_aedat3", no_reading)
    second = build_dataset("dvs128-gesture", root, "test", timesteps=4, progress=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    for i in range(len(first)):
        assert torch.equal(first[i][0], second[i][0])
    # A different T is a different cache, so it must read events again.
    with pytest.raises(AssertionError, match="re-read"):
        build_dataset("dvs128-gesture", root, "test", timesteps=5, progress=False)


def test_gesture_bad_labels_csv(tmp_path: Path) -> None:
    write_gesture_layout(tmp_path, samples_per_class=2, size=16, seed=0)
    csv = tmp_path / "DvsGesture" / "user02_fluorescent_led_labels.csv"
    lines = csv.read_text().splitlines()
    lines[3] = "12,100,200"
    csv.write_text("\n".join(lines))
    with pytest.raises(LabelFileError, match="class 12 outside 1..11") as err:
        build_dataset("dvs128-gesture", tmp_path, "test", timesteps=4, progress=False)
    assert err.value.line == 4 and str(csv) in str(err.value)


def test_unknown_roots_print_the_expected_layout(tmp_path: Path) -> None:
    cases = {
        "dvs128-gesture": "trials_to_train.txt",
        "cifar10-dvs": "cifar10_airplane_0.aedat",
        "imagenet": "train/n01440764",
        "cifar10": "cifar-10-batches-py",
    }
    for name, hint in cases.items():
        with pytest.raises(DatasetLayoutError) as err:
            build_dataset(name, tmp_path / "missing", "train", timesteps=4)
        assert hint in str(err.value) and str(tmp_path / "missing") in str(err.value), name
    (tmp_path / "DvsGesture").mkdir()
    (tmp_path / "DvsGesture" / "trials_to_train.txt").write_text("user01_lab.aedat\n")
    (tmp_path / "DvsGesture" / "trials_to_test.txt").write_text("")
    with pytest.raises(DatasetLayoutError, match="user01_lab.aedat"):
        build_dataset("dvs128-gesture", tmp_path, "train", timesteps=4)


# ---------------------------------------------------------------- CIFAR10-DVS


@pytest.fixture(scope="module")
def cifar_aedat2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("cifar2")
    return root, write_cifar10dvs_layout(root, samples_per_class=10, size=24, seed=3)


def test_cifar10dvs_aedat2_split_and_orientation(cifar_aedat2) -> None:
    root, written = cifar_aedat2
    train = build_dataset("cifar10-dvs", root, "train", timesteps=4, progress=False)
    test = build_dataset("cifar10-dvs", root, "test", timesteps=4, progress=False)
    assert (len(train), len(test)) == (90, 10)
    assert np.bincount(train.targets).tolist() == [9] * 10 and np.bincount(test.targets).tolist() == [1] * 10
    # The last file of every class (index 9) is the test sample.
    assert all(s.key.endswith("_9") for s in test.samples)
    truth = {rec.samples[0].key: rec for rec in written}
    for ds in (train, test):
        for i in (0, len(ds) - 1):
            rec = truth[ds.samples[i].key]
            np.testing.assert_array_equal(
                ds[i][0].numpy(), expected_frames(rec.events, None, timesteps=4, split_by="number", size=128)
            )
    # The file itself stores the flipped scene; the dataset undoes it.
    rec = written[0]
    raw = read_aedat2(rec.path)
    assert not np.array_equal(raw, rec.events)
    np.testing.assert_array_equal(raw["x"], 127 - rec.events["y"])


def test_cifar10dvs_augment_on_train_only(cifar_aedat2) -> None:
    root, _ = cifar_aedat2
    train = build_dataset("cifar10-dvs", root, "train", timesteps=4, augment=True, progress=False)
    test = build_dataset("cifar10-dvs", root, "test", timesteps=4, augment=True, progress=False)
    assert train.transform is not None and test.transform is None
    x, _ = train[0]
    assert torch.equal(x, x.round()) and x.min() >= 0


def test_cifar10dvs_aedat4_with_rescaling(tmp_path: Path) -> None:
    written = write_cifar10dvs_layout(
        tmp_path, samples_per_class=5, size=64, seed=4, aedat4=True, compression="zstd"
    )
    train = build_dataset("cifar10-dvs", tmp_path, "train", timesteps=2, size=48, progress=False)
    test = build_dataset("cifar10-dvs", tmp_path, "test", timesteps=2, size=48, progress=False)
    assert (len(train), len(test)) == (40, 10)  # int(5 * 0.9) = 4 train files per class
    assert train.format == "aedat4" and "aedat4" in train.cache_dir.name
    truth = {rec.samples[0].key: rec for rec in written}
    for i in range(0, len(test), 3):
        rec = truth[test.samples[i].key]
        want = expected_frames(rec.events, None, timesteps=2, split_by="number", size=48)
        np.testing.assert_array_equal(test[i][0].numpy(), want)
        assert test[i][1] == rec.samples[0].label


def test_synthetic_cli_writes_a_readable_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        synthetic_main(
            ["--format", "cifar10dvs", "--out", str(tmp_path), "--samples-per-class", "2", "--size", "16"]
        )
        == 0
    )
    assert "20 samples: 10 train, 10 test" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ship").iterdir()) == [
        "cifar10_ship_0.aedat",
        "cifar10_ship_1.aedat",
    ]
    assert len(build_dataset("cifar10-dvs", tmp_path, "test", timesteps=2, progress=False)) == 10


def test_cifar10dvs_missing_class_files(tmp_path: Path) -> None:
    for cls in cifar10dvs_module.CLASSES:
        (tmp_path / cls).mkdir()
    (tmp_path / "airplane" / "cifar10_airplane_0.aedat").write_bytes(b"#!AER-DAT2.0\r\n")
    with pytest.raises(DatasetLayoutError, match="cifar10_automobile_<i>.aedat"):
        build_dataset("cifar10-dvs", tmp_path, "train", timesteps=2, progress=False)


# ---------------------------------------------------------------- synthetic-events (in memory)


def test_synthetic_events_is_deterministic_and_learnable() -> None:
    kw = dict(timesteps=4, size=32, samples_per_class=30)
    train = build_dataset("synthetic-events", None, "train", **kw)
    again = build_dataset("synthetic-events", None, "train", **kw)
    test = build_dataset("synthetic-events", None, "test", timesteps=4, size=32, samples_per_class=10)
    assert torch.equal(train.frames, again.frames) and len(train) == 300 and len(test) == 100
    x, label = train[0]
    assert x.shape == (4, 2, 32, 32) and x.dtype == torch.float32 and label == 0
    assert not torch.equal(train.frames[:10], test.frames[:10])
    # Nearest class centroid on the raw frames already separates the motion classes.
    feats = train.frames.flatten(1).double()
    targets = torch.tensor(train.targets)
    centroids = torch.stack([feats[targets == c].mean(0) for c in range(10)])
    pred = torch.cdist(test.frames.flatten(1).double(), centroids).argmin(1)
    accuracy = (pred == torch.tensor(test.targets)).double().mean().item()
    assert accuracy > 0.9, accuracy


def test_synthetic_events_options() -> None:
    ds = build_dataset(
        "synthetic-events",
        None,
        "train",
        timesteps=3,
        size=16,
        num_classes=11,
        samples_per_class=2,
        augment=True,
    )
    assert len(ds) == 22 and set(ds.targets) == set(range(11)) and ds.transform is not None
    with pytest.raises(ValueError, match="num_classes"):
        build_dataset("synthetic-events", None, "train", timesteps=3, num_classes=12)


# ---------------------------------------------------------------- static images


def test_imagenet_folder_with_standard_transforms(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n0001", "n0002"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(np.full((40, 50, 3), 100, dtype=np.uint8)).save(tmp_path / split / cls / "a.png")
    train = build_dataset("imagenet", tmp_path, "train", timesteps=4, augment=True, img_size=32)
    test = build_dataset("imagenet", tmp_path, "test", timesteps=4, img_size=32)
    x, label = train[1]
    assert x.shape == (3, 32, 32) and label == 1 and x.dtype == torch.float32
    names = [type(t).__name__ for t in train.transform.transforms]
    assert (
        names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "AutoAugment"]
        and names[-1] == "RandomErasing"
    )
    assert [type(t).__name__ for t in test.transform.transforms][:2] == ["Resize", "CenterCrop"]
    assert test[0][0].shape == (3, 32, 32) and test.classes == ["n0001", "n0002"]
