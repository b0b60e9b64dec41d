"""Export format, validating loader, integer-model graph checks and the overflow bound.

All on random integer models (tests/intmodel_factory.py), so nothing here needs training.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from contract import manifest as ex
from contract.files import atomic_path, atomic_write
from contract.intmodel import IntModel, IntModelError, Op, compare_traces
from contract.numerics import NumericsConfig
from contract.overflow import (
    OverflowRiskError,
    SaturationWarning,
    check_overflow,
    overflow_report,
    signed_bits,
)

from intmodel_factory import random_input, random_int_model

GROUPINGS = [("joint",), ("temporal", "spatial"), ("spatial",)]


def resign(root: Path, manifest: dict) -> None:
    """Rewrite the manifest with a fresh content hash, as docs/numerics.md section 11 defines it."""
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    manifest["content_sha256"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))


def retensor(root: Path, manifest: dict, name: str, array: np.ndarray) -> None:
    """Replace tensor ``name`` with ``array`` (same dtype) and fix its size and hash."""
    entry = manifest["tensors"][name]
    data = np.ascontiguousarray(array.astype(np.dtype(entry["dtype"]).newbyteorder("<"))).tobytes()
    (root / entry["file"]).write_bytes(data)
    entry["shape"], entry["sha256"] = list(array.shape), hashlib.sha256(data).hexdigest()
    resign(root, manifest)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[IntModel, np.ndarray, Path]:
    model = random_int_model(1, groupings=("temporal", "spatial"))
    x = random_input(model, 6, seed=2)
    vectors = ex.make_test_vectors(model, x, np.arange(6) % model.num_classes)
    path = ex.write_export(
        model, tmp_path_factory.mktemp("exp") / "export", vectors=vectors, provenance={"source": "random"}
    )
    return model, x, path


@pytest.fixture()
def copy(exported: tuple[IntModel, np.ndarray, Path], tmp_path: Path) -> tuple[Path, dict]:
    dst = tmp_path / "copy"
    shutil.copytree(exported[2], dst)
    return dst, json.loads((dst / "manifest.json").read_text())


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("groupings", GROUPINGS)
def test_round_trip_gives_identical_logits_and_traces(groupings: tuple[str, ...], tmp_path: Path) -> None:
    model = random_int_model(3, groupings=groupings)
    x = random_input(model, 4, seed=5)
    logits, trace = model.run(x, trace=True)
    path = ex.write_export(model, tmp_path / "e", vectors=ex.make_test_vectors(model, x, np.zeros(4)))
    loaded = ex.load_export(path)
    logits2, trace2 = loaded.model.run(x, trace=True)
    assert logits.dtype == logits2.dtype == np.int64
    assert (logits == logits2).all()
    assert compare_traces(trace, trace2) is None
    assert ex.check_test_vectors(loaded) == 4
    assert [op.name for op in loaded.model.ops] == [op.name for op in model.ops]
    assert loaded.model.shapes == model.shapes


def test_manifest_documents_the_model(exported: tuple[IntModel, np.ndarray, Path]) -> None:
    model, _, path = exported
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "spikeformer-int" and manifest["schema_version"] == 1
    assert manifest["numerics"] == model.numerics.to_dict()
    assert [layer["kind"] for layer in manifest["layers"]][-1] == "head"
    conv = manifest["layers"][0]
    assert conv["tensors"] == {
        "weight": "tokenizer.0.weight",
        "bias": "tokenizer.0.bias",
        "threshold": "tokenizer.0.threshold",
    }
    assert conv["bounds"]["acc_bits"] == overflow_report(model).ops[0].acc_bits
    entry = manifest["tensors"]["tokenizer.0.weight"]
    raw = (path / entry["file"]).read_bytes()
    assert entry["dtype"] == "int8" and len(raw) == np.prod(entry["shape"])
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    assert (np.frombuffer(raw, "<i1").reshape(entry["shape"]) == model.ops[0].tensors["weight"]).all()
    # Nothing generated may hold absolute paths.
    assert str(path) not in (path / "manifest.json").read_text()
    assert not list(path.glob("*.pkl")) and not list(path.glob("**/*.npy"))


# ----------------------------------------------------------------------------- rejection
def test_rejects_tampered_tensor(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    file = root / manifest["tensors"]["blocks.0.attn.1.q.weight"]["file"]
    data = bytearray(file.read_bytes())
    data[3] ^= 0x01
    file.write_bytes(bytes(data))
    with pytest.raises(ex.ExportIntegrityError, match=r"blocks\.0\.attn\.1\.q\.weight\.sha256") as err:
        ex.load_export(root)
    assert err.value.path == str(file)


def test_rejects_truncated_tensor(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    file = root / manifest["tensors"]["head.bias"]["file"]
    file.write_bytes(file.read_bytes()[:-3])
    with pytest.raises(ex.ExportIntegrityError, match="truncated") as err:
        ex.load_export(root)
    assert err.value.field == "tensors.head.bias.file"


def test_rejects_missing_tensor_file(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    (root / manifest["tensors"]["tokenizer.1.bias"]["file"]).unlink()
    with pytest.raises(ex.ExportIntegrityError, match="missing"):
        ex.load_export(root)


def test_rejects_edited_manifest(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    layer = next(x for x in manifest["layers"] if x["name"] == "blocks.0.attn.0.attention")
    layer["params"]["threshold"] += 1  # an attention threshold: no tensor hash covers it
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ex.ExportIntegrityError, match="content_sha256"):
        ex.load_export(root)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("schema_version", 2, "version 2 is not supported"),
        ("format", "onnx", "format"),
        ("num_classes", "3", "must be int"),
    ],
)
def test_rejects_bad_header(copy: tuple[Path, dict], field: str, value: object, match: str) -> None:
    root, manifest = copy
    manifest[field] = value
    resign(root, manifest)
    with pytest.raises(ex.ExportSchemaError, match=match) as err:
        ex.load_export(root)
    assert err.value.field == field


def test_rejects_missing_field(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    del manifest["layers"][2]["params"]["stride"]
    resign(root, manifest)
    with pytest.raises(ex.ExportSchemaError, match=r"layers\[2\] \(tokenizer\.1\)\.params"):
        ex.load_export(root)


def test_rejects_shape_that_does_not_fit_the_graph(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    w = np.zeros((4, 8, 3, 3), np.int64)  # tokenizer.1 expects [8, 4, 3, 3]: same size, wrong layout
    retensor(root, manifest, "tokenizer.1.weight", w)
    with pytest.raises(ex.ExportShapeError, match=r"tokenizer\.1.*tensors\.weight"):
        ex.load_export(root)


def test_rejects_declared_shape_mismatch(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    manifest["layers"][3]["shape"] = [3, 10, 8]
    resign(root, manifest)
    with pytest.raises(ex.ExportShapeError, match=r"layers\[3\] \(tokens\)\.shape"):
        ex.load_export(root)


def test_rejects_dtype_that_does_not_match_the_widths(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    entry = manifest["tensors"]["tokenizer.0.weight"]
    entry["dtype"] = "int16"
    retensor(root, manifest, "tokenizer.0.weight", np.zeros(entry["shape"], np.int64))
    with pytest.raises(ex.ExportShapeError, match="tokenizer.0.weight.dtype"):
        ex.load_export(root)


def test_rejects_values_beyond_the_widths(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    manifest["numerics"]["weight_bits"] = 6  # stored weights reach +-127, beyond +-31
    resign(root, manifest)
    with pytest.raises(ex.ExportRangeError, match=r"weight.*outside") as err:
        ex.load_export(root)
    assert err.value.path.endswith(".weight.bin")


def test_rejects_threshold_below_one(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    theta = np.zeros(manifest["tensors"]["blocks.0.mlp.fc1.threshold"]["shape"], np.int64)
    retensor(root, manifest, "blocks.0.mlp.fc1.threshold", theta)
    with pytest.raises(ex.ExportRangeError, match="blocks.0.mlp.fc1.threshold"):
        ex.load_export(root)


def test_rejects_path_outside_the_export(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    manifest["tensors"]["head.weight"]["file"] = "../head.weight.bin"
    resign(root, manifest)
    with pytest.raises(ex.ExportSchemaError, match=r"tensors\.head\.weight\.file"):
        ex.load_export(root)


def test_rejects_non_json_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ex.ExportIntegrityError, match="not an export directory"):
        ex.load_export(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ex.ExportSchemaError, match="not valid JSON"):
        ex.load_export(tmp_path)


def test_detects_test_vector_mismatch(copy: tuple[Path, dict]) -> None:
    root, manifest = copy
    name = manifest["test_vectors"]["outputs"]["blocks.0.attn.1.attention"]
    entry = manifest["tensors"][name]
    spikes = np.frombuffer((root / entry["file"]).read_bytes(), "u1").reshape(entry["shape"]).copy()
    spikes[1, 2, 3, 4] ^= 1
    retensor(root, manifest, name, spikes)
    loaded = ex.load_export(root)  # structurally valid ...
    with pytest.raises(ex.ExportMismatchError, match=r"blocks\.0\.attn\.1\.attention.*\(1, 2, 3, 4\)"):
        ex.check_test_vectors(loaded)  # ... but the rerun names the op and index


# Every stored test-vector array: (manifest field, path of its tensor name under test_vectors).
VECTOR_FIELDS = [
    ("inputs", ("inputs",)),
    ("labels", ("labels",)),
    ("logits", ("logits",)),
    ("outputs.tokenizer.0", ("outputs", "tokenizer.0")),  # conv spikes
    ("outputs.tokenizer.0.pool", ("outputs", "tokenizer.0.pool")),  # pooled spikes
    ("outputs.blocks.0.attn.1.attention", ("outputs", "blocks.0.attn.1.attention")),  # token layout
    ("outputs.blocks.0.mlp.add", ("outputs", "blocks.0.mlp.add")),  # residual values
    ("currents.tokenizer.1", ("currents", "tokenizer.1")),
    ("currents.blocks.0.attn.0.attention", ("currents", "blocks.0.attn.0.attention")),
]


def _stored(root: Path, manifest: dict, name: str) -> np.ndarray:
    entry = manifest["tensors"][name]
    raw = (root / entry["file"]).read_bytes()
    return np.frombuffer(raw, np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])


@pytest.mark.parametrize("tamper", ["file", "entry"])
@pytest.mark.parametrize("field,key", VECTOR_FIELDS, ids=[f for f, _ in VECTOR_FIELDS])
def test_rejects_test_vector_of_the_wrong_shape(
    copy: tuple[Path, dict], field: str, key: tuple[str, ...], tamper: str
) -> None:
    """A stored vector whose shape does not fit the model fails the load, naming its file and field.

    ``file``: the file holds one element fewer along the last axis, its table entry (size,
    hash) and the manifest hash made consistent, so only the shape check can notice.
    ``entry``: the file is untouched and the table entry claims a same-size shape with an extra
    unit axis.
    """
    root, manifest = copy
    block = manifest["test_vectors"]
    name = block[key[0]] if len(key) == 1 else block[key[0]][key[1]]
    array = _stored(root, manifest, name)
    if tamper == "file":
        retensor(root, manifest, name, array[..., :-1])
    else:
        manifest["tensors"][name]["shape"].append(1)
        resign(root, manifest)
    file = root / manifest["tensors"][name]["file"]
    with pytest.raises(ex.ExportShapeError, match=r"shape \[.*\], expected \[") as err:
        ex.load_export(root)
    assert err.value.field == f"test_vectors.{field}"
    assert err.value.path == str(file)  # the vector file, not just the manifest
    assert str(file) in str(err.value) and f"test_vectors.{field}" in str(err.value)


@pytest.mark.parametrize(
    "key,name,match",
    [
        ("currents", "blocks.0.attn.0.add", "no LIF"),
        ("currents", "tokenizer.0.pool", "no LIF"),
        ("outputs", "head", "test_vectors.logits"),
    ],
)
def test_rejects_vector_of_an_op_that_has_none(
    copy: tuple[Path, dict], key: str, name: str, match: str
) -> None:
    """A stored vector that the rerun would never compare must not pass as checked."""
    root, manifest = copy
    # A structurally valid entry: an existing tensor of the role the loader asks for.
    role_source = "tokenizer.0" if key == "currents" else "blocks.0.attn.0.add"
    manifest["test_vectors"][key][name] = manifest["test_vectors"][key][role_source]
    resign(root, manifest)
    with pytest.raises(ex.ExportSchemaError, match=match) as err:
        ex.load_export(root)
    assert err.value.field == f"test_vectors.{key}.{name}"


@pytest.mark.parametrize("field,key", VECTOR_FIELDS, ids=[f for f, _ in VECTOR_FIELDS])
def test_check_test_vectors_rejects_wrong_shapes_built_in_memory(
    exported: tuple[IntModel, np.ndarray, Path], field: str, key: tuple[str, ...]
) -> None:
    """An :class:`Export` need not come from :func:`load_export`; the rerun checks shapes first."""
    model, x, path = exported
    good = ex.load_export(path)
    vec = good.vectors
    assert vec is not None
    parts = {
        "inputs": vec.inputs,
        "labels": vec.labels,
        "logits": vec.logits,
        "outputs": dict(vec.outputs),
        "currents": dict(vec.currents),
    }
    if len(key) == 1:
        parts[key[0]] = parts[key[0]][..., :-1]
    else:
        parts[key[0]][key[1]] = parts[key[0]][key[1]][..., :-1]
    bad = ex.Export(path, model, good.manifest, ex.TestVectors(**parts))
    with pytest.raises(ex.ExportShapeError, match="expected") as err:
        ex.check_test_vectors(bad)
    assert err.value.field == f"test_vectors.{field}"
    assert ex.check_test_vectors(good) == 6


def test_write_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an export"):
        ex.write_export(random_int_model(0), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# ----------------------------------------------------------------------------- overflow bound
def test_overflow_bound_is_attained_by_the_worst_input() -> None:
    """Inputs R where the weight is positive and 0 elsewhere reach the bound exactly."""
    model = random_int_model(4)
    op = model.op("tokenizer.0")
    bound = overflow_report(model).by_name()["tokenizer.0"]
    w = op.tensors["weight"]
    channel = int(np.argmax(np.where(w > 0, w, 0).sum(axis=(1, 2, 3))))
    r = model.numerics.input_max
    x = np.zeros((1, model.timesteps, *model.input_shape), np.int64)
    x[0, :, :, 1:4, 1:4] = np.where(w[channel] > 0, r, 0)  # one full window centred at (2, 2)
    _, trace = model.run(x, trace=True)
    cur = trace["tokenizer.0.current"][0, 0, channel, 2, 2]
    assert cur == bound.current_range[1] or cur == model.numerics.membrane_max
    acc_max = int(np.where(w[channel] > 0, w[channel], 0).sum()) * r
    assert cur == (acc_max << model.numerics.frac_bits) + op.tensors["bias"][channel]


def test_overflow_is_refused_with_the_layer_named(tmp_path: Path) -> None:
    narrow = NumericsConfig(membrane_bits=16)
    model = random_int_model(0, numerics=narrow)
    with pytest.raises(OverflowRiskError, match=r"op 'tokenizer\.0', current.*needs \d+ bits"):
        ex.write_export(model, tmp_path / "e")
    assert not (tmp_path / "e").exists()
    with pytest.warns(SaturationWarning, match="tokenizer.0"):
        path = ex.write_export(model, tmp_path / "e", allow_saturation=True)
    with pytest.warns(SaturationWarning):
        assert ex.load_export(path).model.numerics == narrow


def test_residual_bound_beyond_input_bits_is_an_error() -> None:
    model = random_int_model(0, groupings=("joint",) * 4, numerics=NumericsConfig(input_bits=2))
    # Residual stream after 4 attention adds reaches 5 > 3 = 2**2 - 1.
    with pytest.raises(OverflowRiskError, match="exceeds input_bits=2"):
        check_overflow(model)


@pytest.mark.parametrize(
    "lo,hi,bits",
    [(0, 0, 1), (-1, 0, 1), (0, 1, 2), (-128, 127, 8), (-129, 0, 9), (0, 128, 9), (-(2**40), 2**40 - 1, 41)],
)
def test_signed_bits(lo: int, hi: int, bits: int) -> None:
    assert signed_bits(lo, hi) == bits


# ----------------------------------------------------------------------------- graph validation
def _ops(model: IntModel) -> list[Op]:
    return list(model.ops)


def _rebuild(model: IntModel, ops: list[Op]) -> IntModel:
    return IntModel(
        numerics=model.numerics,
        input_shape=model.input_shape,
        timesteps=model.timesteps,
        num_classes=model.num_classes,
        ops=tuple(ops),
    )


def test_graph_rejects_unknown_input_and_missing_head() -> None:
    model = random_int_model(0)
    ops = _ops(model)
    ops[1] = Op(name="tokenizer.0.pool", kind="maxpool", inputs=("nowhere",), params=ops[1].params)
    with pytest.raises(IntModelError, match=r"tokenizer\.0\.pool.*'nowhere' is not"):
        _rebuild(model, ops)
    with pytest.raises(IntModelError, match="head"):
        _rebuild(model, _ops(model)[:-1])


def test_graph_rejects_weights_beyond_the_width() -> None:
    model = random_int_model(0)
    ops = _ops(model)
    tensors = dict(ops[0].tensors, weight=ops[0].tensors["weight"] * 0 + 128)
    ops[0] = Op(name=ops[0].name, kind="conv", inputs=ops[0].inputs, params=ops[0].params, tensors=tensors)
    with pytest.raises(IntModelError, match=r"tokenizer\.0.*tensors\.weight.*outside \[-127, 127\]") as err:
        _rebuild(model, ops)
    assert err.value.category == "range"


def test_run_rejects_bad_inputs() -> None:
    model = random_int_model(0)
    x = random_input(model, 2, seed=0)
    with pytest.raises(ValueError, match="must be <= input_max"):
        model.run(x + 300)
    with pytest.raises(ValueError, match="fractional"):
        model.run(x + 0.5)
    with pytest.raises(ValueError, match="input must be"):
        model.run(x[:, :2])
    # Static images are repeated over time: identical to passing the repeated frames.
    static = x[:, 0]
    repeated = np.repeat(static[:, None], model.timesteps, axis=1)
    assert (model.run(static)[0] == model.run(repeated)[0]).all()


def test_compare_traces_names_first_difference() -> None:
    a = {"x": np.zeros((2, 3), np.int64), "y": np.ones(4, np.int64)}
    b = {"x": np.zeros((2, 3), np.int64), "y": np.array([1, 1, 0, 0])}
    mismatch = compare_traces(a, b)
    assert (mismatch.name, mismatch.index, mismatch.count) == ("y", (2,), 2)
    assert compare_traces(a, {"x": a["x"]}).reason == "missing from the actual trace"
    assert "shape" in compare_traces(a, {"x": np.zeros((3, 2)), "y": a["y"]}).reason
    assert compare_traces(a, dict(a)) is None


def test_atomic_write_replaces_whole_files_only(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    assert atomic_write(target, "old\n") == target and target.read_text() == "old\n"
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]


# ----------------------------------------------------------------------------- traced prefix
@pytest.mark.parametrize("traced", [0, 2, 6])
def test_traces_of_a_prefix_round_trip_and_are_checked(exported, tmp_path: Path, traced: int) -> None:
    """Logits are stored for every sample, outputs and currents for the first ``traced`` only."""
    model, x, _ = exported
    vectors = ex.make_test_vectors(model, x, np.zeros(6), traced=traced)
    path = ex.write_export(model, tmp_path / "e", vectors=vectors)
    loaded = ex.load_export(path)
    assert loaded.vectors.count == 6 and loaded.vectors.traced_count == traced
    logits, trace = model.run(x, trace=True)
    assert np.array_equal(loaded.vectors.logits, logits)
    stored = {op.name for op in model.ops if op.kind != "head"} if traced else set()
    assert set(loaded.vectors.outputs) == stored
    for name in stored:
        assert np.array_equal(loaded.vectors.outputs[name], trace[name][:, :traced])
    assert ex.check_test_vectors(loaded) == 6


def test_a_wrong_trace_in_the_prefix_is_found(exported, tmp_path: Path) -> None:
    model, x, _ = exported
    path = ex.write_export(
        model, tmp_path / "e", vectors=ex.make_test_vectors(model, x, np.zeros(6), traced=2)
    )
    manifest = json.loads((path / "manifest.json").read_text())
    name = next(iter(manifest["test_vectors"]["outputs"].values()))
    stored = ex.load_export(path).vectors.outputs
    op = next(iter(stored))
    retensor(path, manifest, name, 1 - stored[op])
    with pytest.raises(ex.ExportMismatchError, match=op):
        ex.check_test_vectors(ex.load_export(path))


@pytest.mark.parametrize("traced", [-1, 7])
def test_a_traced_count_outside_the_samples_is_refused(exported, tmp_path: Path, traced: int) -> None:
    model, x, _ = exported
    path = ex.write_export(
        model, tmp_path / "e", vectors=ex.make_test_vectors(model, x, np.zeros(6), traced=2)
    )
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["test_vectors"]["traced"] = traced
    resign(path, manifest)
    with pytest.raises(ex.ExportSchemaError, match="test_vectors.traced"):
        ex.load_export(path)
