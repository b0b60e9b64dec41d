"""Frame integration on hand-computable cases, coordinate rescaling and DVS augmentation."""

from __future__ import annotations

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
    for split_by in ("number", "time"):
        frames = events_to_frames(events, timesteps=6, split_by=split_by, height=5, width=7)
        expected = np.zeros((6, 2, 5, 7), dtype=np.int64)
        t0, span = events["t"].min(), events["t"].max() - events["t"].min() + 1
        for i, e in enumerate(events):
            k = min(i // (n // 6), 5) if split_by == "number" else (e["t"] - t0) * 6 // span
            expected[k, e["p"], e["y"], e["x"]] += 1
        np.testing.assert_array_equal(frames, expected)


def test_empty_stream_and_bad_arguments() -> None:
    empty = ev([], [], [], [])
    for split_by in ("number", "time"):
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
