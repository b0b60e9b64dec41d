"""Integer models and inputs for the accelerator's model-level tests.

* :func:`tiny_model`: the suite's briefly trained ``hw-tiny`` digits export (the conftest
  ``tiny_export`` fixture) and digits test inputs.
* :func:`dvs_model`: a DVS-shaped Hardware Spikeformer (2 x 16 x 16 event frames, T = 4,
  two conv stages with spike max-pool, 64 tokens, one block with ``joint`` or ``divided``
  attention), untrained, its BatchNorm statistics calibrated on ``synthetic-events`` frames
  (:func:`golden.workloads.firing_int_model`);
* :func:`spikeformer_mini_model`: ``hw-spikeformer-mini`` (the paper's SEW tokenizer and divided
  attention, reduced), calibrated the same way, with its spike embedding drawn half on;
* :func:`assert_emulator_matches_model`: a model's traced program on the emulator against the
  integer model, every layer and the logits.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

from contract.intmodel import IntModel, compare_traces, quantize_input
from golden.workloads import firing_int_model
from protocol.compiler import compile_model
from protocol.config import AcceleratorConfig
from protocol.emulator import Emulator
from protocol.program import Program
from protocol.segments import run_program

__all__ = [
    "tiny_model",
    "dvs_model",
    "spikeformer_mini_model",
    "with_embedding",
    "assert_emulator_matches_model",
]


def _dataset(name: str, split: str, count: int, **kwargs: object) -> np.ndarray:
    from golden.data import build_dataset

    root = None  # digits ships with scikit-learn; synthetic events are generated in memory
    ds = build_dataset(name, root, split, timesteps=4, **kwargs)
    return np.stack([np.asarray(ds[i][0]) for i in range(count)])


@lru_cache(maxsize=2)
def tiny_model(export: Path, samples: int) -> tuple[IntModel, np.ndarray]:
    """``(model, inputs [samples, 1, 8, 8])``: the hw-tiny export at ``export`` and digits test inputs."""
    from contract.manifest import load_export

    model = load_export(export).model
    inputs = quantize_input(_dataset("digits", "test", samples), input_max=model.numerics.input_max)
    return model, inputs


@lru_cache(maxsize=2)
def dvs_model(attention: str, samples: int = 2) -> tuple[IntModel, np.ndarray]:
    """``(model, inputs [samples, 4, 2, 16, 16])``; ``attention`` is ``joint`` or ``divided``."""
    overrides = dict(
        in_channels=2,
        img_size=16,
        num_classes=10,
        timesteps=4,
        tokenizer_channels=(16,),
        tokenizer_pools=(True, False),
        embed_dim=32,
        depth=1,
        heads=2,
        mlp_ratio=2,
        attention=attention,
    )
    calibration = _dataset("synthetic-events", "train", 64, size=16)
    model = firing_int_model("hw-tiny", calibration=calibration, **overrides)
    frames = _dataset("synthetic-events", "test", samples, size=16)
    return model, quantize_input(frames, input_max=model.numerics.input_max)


def with_embedding(model: IntModel, seed: int) -> IntModel:
    """``model`` with the constant of each ``add_const`` op (the spike embedding) drawn half on:
    an untrained embedding is all off, and adding zeros would leave the op untested."""
    rng = np.random.default_rng(seed)
    ops = tuple(
        dataclasses.replace(op, tensors={"spikes": rng.integers(0, 2, op.tensors["spikes"].shape)})
        if op.kind == "add_const"
        else op
        for op in model.ops
    )
    return dataclasses.replace(model, ops=ops)


@lru_cache(maxsize=1)
def spikeformer_mini_model(samples: int = 2) -> tuple[IntModel, np.ndarray]:
    """``(model, inputs [samples, 4, 2, 32, 32])``: ``hw-spikeformer-mini`` (six SEW blocks of
    strides 2, 1, 2, 1, 2, 1 down to 4x4 = 16 tokens, the spike embedding, two blocks of divided
    attention at D = 32 with two heads), untrained, its BatchNorm statistics calibrated on
    ``synthetic-events`` frames."""
    calibration = _dataset("synthetic-events", "train", 64, size=32)
    model = with_embedding(firing_int_model("hw-spikeformer-mini", calibration=calibration), seed=0)
    frames = _dataset("synthetic-events", "test", samples, size=32)
    return model, quantize_input(frames, input_max=model.numerics.input_max)


def assert_emulator_matches_model(
    config: AcceleratorConfig, model: IntModel, x: np.ndarray, *, in_place_adds: bool | None = None
) -> Program:
    """Every sample of ``x`` through ``model``'s traced program for ``config`` on the emulator
    (segment by segment if band tiled): every layer and the logits equal the integer model's.
    Returns the program."""
    logits, trace = model.run(x, trace=True)
    program = compile_model(model, config, trace=True, in_place_adds=in_place_adds)
    emulator = Emulator(config)
    assert set(program.trace_names) >= {op.name for op in model.ops if op.kind != "head"}
    for i in range(len(x)):
        got_logits, got_trace = program.decode(run_program(program, x[i], emulator.run))
        expected = {name: value[:, i : i + 1] for name, value in trace.items()}
        assert compare_traces(expected, got_trace, names=program.trace_names) is None
        np.testing.assert_array_equal(got_logits, logits[i])
    return program
