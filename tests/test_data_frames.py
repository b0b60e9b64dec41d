"""Frame integration on hand-computable cases, coordinate rescaling and DVS augmentation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from golden.data.events import cifar10dvs_flip, make_events
from golden.data.frames import events_to_frames, frame_index, rescale_events
from golden.data.transforms import DVSAugment, train_transform


def ev(t, x, y, p) -> np.ndarray:
    return make_events(np.asarray(t), np.asarray(x), np.asarray(y), np.asarray(p))


def test_split_by_number_last_frame_takes_remainder() -> None:
    events = ev(range(10), [0] * 10, [0] * 10, [1] * 10)
    assert frame_index(events, timesteps=3, split_by="number").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    frames = events_to_frames(events, timesteps=3, height=1, width=1)
    assert frames.shape == (3, 2, 1, 1)
    assert frames[:, 1, 0, 0].tolist() == [3, 3, 4] and frames[:, 0].sum() == 0


def test_split_by_number_fewer_events_than_frames() -> None:
    events = ev([5, 6], [1, 2], [0, 0], [0, 1])
    frames = events_to_frames(events, timesteps=4, height=1, width=3)
    assert frames[:3].sum() == 0
    assert frames[3].tolist() == [[[0, 1, 0]], [[0, 0, 1]]]


def test_split_by_time_equal_windows() -> None:
    # Span [0, 99] in 4 windows of 25 us: 0, 10, 24 -> frame 0; 25 -> 1; 99 -> 3.
    events = ev([0, 10, 24, 25, 99], [0] * 5, [0] * 5, [1] * 5)
    assert frame_index(events, timesteps=4, split_by="time").tolist() == [0, 0, 0, 1, 3]
    # Timestamps need not start at zero.
    shifted = ev([1000, 1005, 1009], [0] * 3, [0] * 3, [0] * 3)
    assert frame_index(shifted, timesteps=2, split_by="time").tolist() == [0, 1, 1]


def test_split_by_time_spikingjelly_windows() -> None:
    # Span 0..99, T = 4: dt = floor(99 / 4) = 24; edges at 24, 48, 72 (not 25, 50, 75 as
    # in "time"); the last frame takes 72..99, 28 us.
    events = ev([0, 23, 24, 47, 48, 71, 72, 95, 96, 99], [0] * 10, [0] * 10, [1] * 10)
    assert frame_index(events, timesteps=4, split_by="time-spikingjelly").tolist() == [
        0, 0, 1, 1, 2, 2, 3, 3, 3, 3,
    ]  # fmt: skip
    assert frame_index(events, timesteps=4, split_by="time").tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    # Timestamps need not start at zero; an empty window is an empty frame.
    shifted = ev([1000, 1001, 1009], [0] * 3, [0] * 3, [0] * 3)
    assert frame_index(shifted, timesteps=3, split_by="time-spikingjelly").tolist() == [0, 0, 2]
    # A span shorter than T (dt = 0): everything in the last frame, as with split_by="number".
    short = ev([5, 6, 7], [0] * 3, [0] * 3, [1] * 3)
    assert frame_index(short, timesteps=4, split_by="time-spikingjelly").tolist() == [3, 3, 3]
    assert frame_index(short[:1], timesteps=1, split_by="time-spikingjelly").tolist() == [0]


def test_time_spikingjelly_matches_its_documented_formula() -> None:
    # dt = floor((t_max - t_min) / T); frame j < T-1 holds t in [t_min + j dt, t_min + (j+1) dt),
    # the last frame everything from t_min + (T-1) dt on.
    rng = np.random.default_rng(3)
    for timesteps, n, t_max in [(4, 300, 1000), (7, 1000, 10**6), (16, 50, 37), (3, 20, 2)]:
        t = np.sort(rng.integers(0, t_max, n)) + 12345
        events = ev(t, [0] * n, [0] * n, rng.integers(0, 2, n))
        dt = (t.max() - t.min()) // timesteps
        want = np.empty(n, dtype=np.int64)
        for i, ti in enumerate(t):
            lows = [t.min() + j * dt for j in range(timesteps)]
            want[i] = max(j for j in range(timesteps) if ti >= lows[j])
        assert (
            frame_index(events, timesteps=timesteps, split_by="time-spikingjelly").tolist() == want.tolist()
        )


def _spikingjelly_dataset_utils() -> ModuleType:
    """SpikingJelly 2.0's ``spikingjelly.datasets.utils``, or skip when SpikingJelly is absent.

    The package ``spikingjelly.datasets`` imports every data set on import (h5py, and
    torchaudio for one); when that fails, the one module is loaded from its file, which
    needs only torch, torchvision, matplotlib, tqdm and loguru.
    """
    if importlib.util.find_spec("spikingjelly") is None:
        pytest.skip(
            "spikingjelly is not installed (deliberately not in the lock; "
            "`pip install --no-deps spikingjelly==2.0.0 loguru` to run this comparison)"
        )
    try:
        import spikingjelly.datasets.utils as utils

        return utils
    except ImportError:
        pass
    root = Path(importlib.util.find_spec("spikingjelly").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location(
        "spikingjelly.datasets.utils", root / "datasets" / "utils.py"
    )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        pytest.skip(f"spikingjelly.datasets.utils does not import here: {exc}")
    return module


@pytest.mark.parametrize(
    ("timesteps", "n", "t_max"),
    [(4, 2000, 10**6), (16, 5000, 3 * 10**6), (10, 500, 600), (5, 97, 50), (1, 30, 10**4)],
)
def test_frames_match_spikingjelly(timesteps: int, n: int, t_max: int) -> None:
    utils = _spikingjelly_dataset_utils()
    rng = np.random.default_rng(n)
    t = np.sort(rng.integers(0, t_max, n)) + 777
    events = ev(t, rng.integers(0, 9, n), rng.integers(0, 6, n), rng.integers(0, 2, n))
    as_dict = {key: events[key] for key in ("t", "x", "y", "p")}
    for theirs_by, ours_by in (("number", "number"), ("time", "time-spikingjelly")):
        theirs = utils.integrate_events_by_fixed_frames_number(as_dict, theirs_by, timesteps, 6, 9)
        ours = events_to_frames(events, timesteps=timesteps, split_by=ours_by, height=6, width=9)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"split_by={ours_by!r}")
    if n > t_max:
        # Dense enough that events sit between the two splits' edges (< T us apart).
        ours = events_to_frames(events, timesteps=timesteps, split_by="time", height=6, width=9)
        assert not np.array_equal(ours, theirs)


def test_spikingjelly_time_split_fails_on_an_empty_window() -> None:
    # The documented difference: SpikingJelly raises where the option gives an empty frame.
    utils = _spikingjelly_dataset_utils()
    events = ev([0, 1, 2, 90, 99], [0, 1, 2, 3, 4], [0] * 5, [1, 0, 1, 0, 1])
    as_dict = {key: events[key] for key in ("t", "x", "y", "p")}
    with pytest.raises(IndexError):
        utils.integrate_events_by_fixed_frames_number(as_dict, "time", 4, 1, 5)
    frames = events_to_frames(events, timesteps=4, split_by="time-spikingjelly", height=1, width=5)
    assert frames.sum(axis=(1, 2, 3)).tolist() == [3, 0, 0, 2]


def test_counts_per_polarity_and_pixel() -> None:
    # Three ON events at (x=2, y=1), one OFF at (x=0, y=0), one ON at (x=0, y=0).
    events = ev([0, 1, 2, 3, 4], [2, 2, 2, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 1])
    frames = events_to_frames(events, timesteps=1, height=2, width=3)
    expected = np.zeros((1, 2, 2, 3), dtype=np.int64)
    expected[0, 1, 1, 2] = 3
    expected[0, 0, 0, 0] = 1
    expected[0, 1, 0, 0] = 1
    np.testing.assert_array_equal(frames, expected)


def test_frames_match_a_straightforward_loop() -> None:
    rng = np.random.default_rng(0)
    n = 503
    events = ev(
        np.sort(rng.integers(0, 10**6, n)),
        rng.integers(0, 7, n),
        rng.integers(0, 5, n),
        rng.integers(0, 2, n),
    )
    for split_by in ("number", "time", "time-spikingjelly"):
        frames = events_to_frames(events, timesteps=6, split_by=split_by, height=5, width=7)
        expected = np.zeros((6, 2, 5, 7), dtype=np.int64)
        t0, span = events["t"].min(), events["t"].max() - events["t"].min() + 1
        for i, e in enumerate(events):
            if split_by == "number":
                k = min(i // (n // 6), 5)
            elif split_by == "time":
                k = (e["t"] - t0) * 6 // span
            else:
                k = min((e["t"] - t0) // ((span - 1) // 6), 5)
            expected[k, e["p"], e["y"], e["x"]] += 1
        np.testing.assert_array_equal(frames, expected)


def test_empty_stream_and_bad_arguments() -> None:
    empty = ev([], [], [], [])
    for split_by in ("number", "time", "time-spikingjelly"):
        assert events_to_frames(empty, timesteps=2, split_by=split_by, height=2, width=2).sum() == 0
    one = ev([0], [5], [0], [1])
    with pytest.raises(ValueError, match="event x range 5..5"):
        events_to_frames(one, timesteps=1, height=4, width=4)
    with pytest.raises(ValueError, match="split_by"):
        events_to_frames(one, timesteps=1, split_by="count", height=8, width=8)
    with pytest.raises(ValueError, match="timesteps"):
        events_to_frames(one, timesteps=0, height=8, width=8)


def test_rescale_events_bins_coordinates() -> None:
    events = ev([0, 1, 2], [0, 3, 127], [127, 64, 2], [1, 0, 1])
    out = rescale_events(events, sensor=(128, 128), size=(48, 48))
    assert out["x"].tolist() == [0, 1, 47] and out["y"].tolist() == [47, 24, 0]
    assert out["t"].tolist() == [0, 1, 2] and out["p"].tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="at most the sensor size"):
        rescale_events(events, sensor=(128, 128), size=(256, 256))


def test_cifar10dvs_flip_is_the_documented_involution() -> None:
    events = ev([7], [3], [10], [1])
    flipped = cifar10dvs_flip(events)
    assert flipped.tolist() == [(7, 117, 124, 0)]
    np.testing.assert_array_equal(cifar10dvs_flip(flipped), events)


def test_augment_flip_only() -> None:
    x = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)
    seen = set()
    for seed in range(20):
        out = DVSAugment(flip=True, max_roll=0, cutout=0, generator=torch.Generator().manual_seed(seed))(x)
        assert torch.equal(out, x) or torch.equal(out, x.flip(-1))
        seen.add(torch.equal(out, x))
    assert seen == {True, False}


def test_augment_roll_and_cutout_are_shared_over_time() -> None:
    frame = torch.randint(0, 5, (2, 32, 32)).float()
    x = frame.expand(4, -1, -1, -1).clone()
    aug = DVSAugment(flip=False, max_roll=5, cutout=0, generator=torch.Generator().manual_seed(1))
    rolled = aug(x)
    assert rolled.sum() == x.sum()
    assert all(torch.equal(rolled[t], rolled[0]) for t in range(4))
    shifts = {
        (dy, dx)
        for dy in range(-5, 6)
        for dx in range(-5, 6)
        if torch.equal(rolled[0], frame.roll((dy, dx), (-2, -1)))
    }
    assert shifts
    ones = torch.ones(3, 2, 32, 32)
    for seed in range(10):
        cut = DVSAugment(flip=False, max_roll=0, cutout=16, generator=torch.Generator().manual_seed(seed))(
            ones
        )
        zeroed = (cut[0, 0] == 0).nonzero()
        height = zeroed[:, 0].max() - zeroed[:, 0].min() + 1
        width = zeroed[:, 1].max() - zeroed[:, 1].min() + 1
        assert int((cut == 0).sum()) == 3 * 2 * int(height) * int(width)  # one rectangle, all T and channels
        assert 8 <= height <= 16 and 8 <= width <= 16  # clipped at borders by at most half
    assert torch.equal(ones, torch.ones(3, 2, 32, 32))  # the input is not modified


def test_train_transform_recipes() -> None:
    assert train_transform("cifar10-dvs").flip is True
    assert train_transform("dvs128-gesture").flip is False  # flips swap left/right-hand classes
    assert train_transform("digits") is None
    with pytest.raises(KeyError):
        train_transform("imagenet")
