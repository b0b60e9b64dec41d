"""Export directory of an integer model: writer and validating loader (docs/numerics.md §11).

Layout::

    manifest.json          format, schema version, model, numerics, op list, tensor table
    tensors/<name>.bin     raw little-endian integers, C order, no header
    vectors/<name>.bin     test vectors (inputs, labels, logits, per-op outputs and currents)

Nothing is pickled or executable. :func:`load_export` checks every field, file size, hash,
dtype, shape and value range and raises a subclass of :class:`ExportError` that names
the file and the field; it never returns a partially valid export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import numerics as nm
from .intmodel import LIF_KINDS, OP_KINDS, IntModel, IntModelError, Op, compare_traces, quantize_input
from .overflow import OverflowRiskError, check_overflow

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "ExportError",
    "ExportSchemaError",
    "ExportIntegrityError",
    "ExportShapeError",
    "ExportRangeError",
    "ExportMismatchError",
    "TestVectors",
    "Export",
    "make_test_vectors",
    "write_export",
    "load_export",
    "check_test_vectors",
]

FORMAT = "spikeformer-int"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "int64")
_FILE = re.compile(r"^(tensors|vectors)/[A-Za-z0-9_][A-Za-z0-9_.\-]*\.bin$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- errors
class ExportError(ValueError):
    """An export directory is invalid.

    Attributes
    ----------
    path:
        The offending file (the manifest or a tensor file).
    field:
        The manifest field (``"layers[3].tensors.weight"``, ``"tensors.head.bias.sha256"``, ...).
    reason:
        What is wrong.
    """

    def __init__(self, path: PathLike, field: str, reason: str) -> None:
        self.path, self.field, self.reason = os.fspath(path), field, reason
        super().__init__(f"{self.path}: field {field!r}: {reason}")


class ExportSchemaError(ExportError):
    """Missing or ill-typed field, unknown format or schema version."""


class ExportIntegrityError(ExportError):
    """Missing, truncated or altered file (size or sha256 mismatch)."""


class ExportShapeError(ExportError):
    """A shape or dtype does not fit the model graph or the widths."""


class ExportRangeError(ExportError):
    """Values outside the range the widths allow, or a violated overflow bound."""


class ExportMismatchError(ExportError):
    """Rerunning the stored test vectors does not reproduce the stored outputs."""


# --------------------------------------------------------------------------- test vectors
@dataclass(frozen=True, eq=False)
class TestVectors:
    """Inputs and the integer model's exact outputs for ``count`` samples.

    Logits are stored for every sample; per-op outputs and currents only for the first
    ``traced`` ones (a whole test split of traces would dwarf the model).

    Attributes
    ----------
    inputs:
        ``[count, T, C, H, W]`` (events) or ``[count, C, H, W]`` (static) integers.
    labels:
        ``[count]`` dataset labels.
    logits:
        ``[count, classes]``.
    outputs:
        Op name -> output in the trace layout (``[T, traced, ...]``).
    currents:
        LIF op name -> saturated input current ``[T, traced, ...]``.
    traced:
        Samples whose outputs and currents are stored (``None``: all ``count``).
    """

    __test__ = False  # not a pytest class, despite the name

    inputs: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    currents: Mapping[str, np.ndarray] = field(default_factory=dict)
    traced: int | None = None

    @property
    def count(self) -> int:
        return int(self.labels.shape[0])

    @property
    def traced_count(self) -> int:
        """Leading samples whose per-op outputs and currents are stored."""
        return self.count if self.traced is None else self.traced


def make_test_vectors(
    model: IntModel, inputs: Any, labels: Any, *, currents: bool = True, traced: int | None = None
) -> TestVectors:
    """Run ``model`` on ``inputs`` (clipped to ``input_max``): the logits of every sample, and
    every op's output (and LIF current) of the first ``traced`` samples (``None``: all)."""
    x = quantize_input(inputs, input_max=model.numerics.input_max)
    count = len(x)
    if traced is not None and not (isinstance(traced, int) and 0 <= traced):
        raise ValueError(f"make_test_vectors traced must be a non-negative integer or None, not {traced!r}")
    keep = count if traced is None else min(traced, count)
    if keep == count:
        logits, trace = model.run(x, trace=True)
    else:
        logits = model.run(x)[0]
        trace = model.run(x[:keep], trace=True)[1] if keep else {}
    outputs = {op.name: trace[op.name] for op in model.ops if keep and op.kind != "head"}
    cur = {
        op.name: trace[op.name + ".current"] for op in model.ops if keep and currents and op.kind in LIF_KINDS
    }
    return TestVectors(
        x, np.asarray(labels, dtype=np.int64), logits, outputs, cur, None if keep == count else keep
    )


# --------------------------------------------------------------------------- dtypes and ranges
def _signed_dtype(bits: int) -> str:
    return next(d for d, b in (("int8", 8), ("int16", 16), ("int32", 32), ("int64", 64)) if bits <= b)


def _unsigned_dtype(bits: int) -> str:
    return "uint8" if bits <= 8 else "uint16"


def _role_spec(role: str, cfg: nm.NumericsConfig, num_classes: int) -> tuple[str, int | None, int | None]:
    """Storage dtype and allowed ``[min, max]`` (``None``: unbounded) of a tensor role."""
    membrane = (_signed_dtype(cfg.membrane_bits), cfg.membrane_min, cfg.membrane_max)
    specs: dict[str, tuple[str, int | None, int | None]] = {
        "weight": (_signed_dtype(cfg.weight_bits), -cfg.weight_max, cfg.weight_max),
        "bias": membrane,
        "threshold": (membrane[0], 1, cfg.membrane_max),
        "head_weight": (_signed_dtype(cfg.weight_bits), -cfg.weight_max, cfg.weight_max),
        "head_bias": ("int64", None, None),
        "input": (_unsigned_dtype(cfg.input_bits), 0, cfg.input_max),
        "labels": ("int64", 0, num_classes - 1),
        "logits": ("int64", None, None),
        "spikes": ("uint8", 0, 1),
        "values": (_unsigned_dtype(cfg.input_bits), 0, cfg.input_max),
        "current": membrane,
    }
    return specs[role]


ROLES = (
    "weight",
    "bias",
    "threshold",
    "head_weight",
    "head_bias",
    "input",
    "labels",
    "logits",
    "spikes",
    "values",
    "current",
)


def _op_tensor_role(op: Op, role: str) -> str:
    return f"head_{role}" if op.kind == "head" else role


def _output_role(op: Op) -> str:
    return "spikes" if op.kind in LIF_KINDS else "values"


# --------------------------------------------------------------------------- writer
def _content_hash(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _TensorWriter:
    def __init__(self, root: Path, cfg: nm.NumericsConfig, num_classes: int) -> None:
        self.root, self.cfg, self.num_classes = root, cfg, num_classes
        self.table: dict[str, dict[str, Any]] = {}

    def add(self, folder: str, name: str, array: np.ndarray, role: str) -> str:
        dtype, lo, hi = _role_spec(role, self.cfg, self.num_classes)
        array = np.asarray(array)
        if array.size and ((lo is not None and array.min() < lo) or (hi is not None and array.max() > hi)):
            raise ValueError(
                f"tensor {name!r} ({role}) has values [{array.min()}, {array.max()}] outside [{lo}, {hi}]"
            )
        data = np.ascontiguousarray(array.astype(np.dtype(dtype).newbyteorder("<"))).tobytes()
        rel = f"{folder}/{name}.bin"
        (self.root / rel).write_bytes(data)
        self.table[name] = {
            "file": rel,
            "dtype": dtype,
            "shape": list(array.shape),
            "role": role,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return name


def _layer_entry(op: Op, model: IntModel, writer: _TensorWriter, bound: Any) -> dict[str, Any]:
    tensors = {
        role: writer.add("tensors", f"{op.name}.{role}", array, _op_tensor_role(op, role))
        for role, array in op.tensors.items()
    }
    entry: dict[str, Any] = {
        "name": op.name,
        "kind": op.kind,
        "inputs": list(op.inputs),
        "shape": list(model.shapes[op.name]),
        "params": dict(op.params),
        "tensors": tensors,
        "lif": op.lif,
        "reference": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in op.reference.items()},
        "bounds": {"input_max": list(bound.input_max), "output_max": bound.output_max},
    }
    if op.kind in ("conv", "conv_maxpool", "linear", "attention", "head"):
        entry["bounds"].update(
            acc_range=list(bound.acc_range),
            acc_bits=bound.acc_bits,
            current_range=list(bound.current_range),
            current_bits=bound.current_bits,
        )
    return entry


def write_export(
    model: IntModel,
    out: PathLike,
    *,
    vectors: TestVectors | None = None,
    allow_saturation: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and optional test vectors) to the export directory ``out``.

    The overflow bound (docs/numerics.md §9) is checked first: a model that can overflow
    is refused with :class:`~contract.overflow.OverflowRiskError` naming the op. An existing
    ``out`` is replaced only if it is an export (holds a ``manifest.json``) or empty.
    ``provenance`` (JSON-serializable, no absolute paths) is stored as is.

    Returns
    -------
    Path
        ``out``.
    """
    report = check_overflow(model, allow_saturation=allow_saturation)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} exists and is not an export directory; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be shared
    try:
        for folder in ("tensors", "vectors"):
            (tmp / folder).mkdir()
        writer = _TensorWriter(tmp, model.numerics, model.num_classes)
        bounds = report.by_name()
        layers = [_layer_entry(op, model, writer, bounds[op.name]) for op in model.ops]
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "preset": model.preset,
            "model_config": _jsonable(model.model_config),
            "numerics": model.numerics.to_dict(),
            "allow_saturation": bool(allow_saturation),
            "input": {
                "shape": list(model.input_shape),
                "timesteps": model.timesteps,
                "event": model.event,
                "input_max": model.numerics.input_max,
            },
            "num_classes": model.num_classes,
            "byte_order": "little",
            "layers": layers,
        }
        if vectors is not None:
            manifest["test_vectors"] = _write_vectors(model, vectors, writer)
        manifest["tensors"] = writer.table
        manifest["provenance"] = _jsonable(provenance or {})
        manifest["content_sha256"] = _content_hash(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _write_vectors(model: IntModel, vectors: TestVectors, writer: _TensorWriter) -> dict[str, Any]:
    outputs = {}
    for op in model.ops:
        if op.name in vectors.outputs:
            outputs[op.name] = writer.add(
                "vectors", f"vectors.{op.name}", vectors.outputs[op.name], _output_role(op)
            )
    currents = {
        name: writer.add("vectors", f"vectors.{name}.current", array, "current")
        for name, array in vectors.currents.items()
    }
    return {
        "count": vectors.count,
        "traced": vectors.traced_count,
        "inputs": writer.add("vectors", "vectors.inputs", vectors.inputs, "input"),
        "labels": writer.add("vectors", "vectors.labels", vectors.labels, "labels"),
        "logits": writer.add("vectors", "vectors.logits", vectors.logits, "logits"),
        "outputs": outputs,
        "currents": currents,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


# --------------------------------------------------------------------------- loader
@dataclass(frozen=True, eq=False)
class Export:
    """A validated export: the integer model, its test vectors and the raw manifest."""

    path: Path
    model: IntModel
    manifest: Mapping[str, Any]
    vectors: TestVectors | None


class _Reader:
    """Field access with typed errors naming the manifest and the field path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / MANIFEST

    def fail(self, cls: type[ExportError], field_: str, reason: str, file: Path | None = None) -> ExportError:
        return cls(file or self.manifest_path, field_, reason)

    def get(self, obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
        path = f"{where}.{key}" if where else key
        if not isinstance(obj, Mapping) or key not in obj:
            raise self.fail(ExportSchemaError, path, "missing")
        value = obj[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(ExportSchemaError, path, f"must be {_type_names(types)}, not a boolean")
        if not isinstance(value, types):
            raise self.fail(
                ExportSchemaError, path, f"must be {_type_names(types)}, not {type(value).__name__}"
            )
        return value


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def load_export(path: PathLike) -> Export:
    """Load and fully validate an export directory (see the module docstring)."""
    root = Path(path)
    r = _Reader(root)
    if not r.manifest_path.is_file():
        raise ExportIntegrityError(r.manifest_path, "manifest", "missing: not an export directory")
    try:
        manifest = json.loads(r.manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportSchemaError(r.manifest_path, "manifest", f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise r.fail(ExportSchemaError, "manifest", "must be a JSON object")
    if r.get(manifest, "format", str, "") != FORMAT:
        raise r.fail(ExportSchemaError, "format", f"must be {FORMAT!r}, not {manifest['format']!r}")
    version = r.get(manifest, "schema_version", int, "")
    if version != SCHEMA_VERSION:
        raise r.fail(
            ExportSchemaError,
            "schema_version",
            f"version {version} is not supported (this loader reads version {SCHEMA_VERSION})",
        )
    if r.get(manifest, "content_sha256", str, "") != _content_hash(manifest):
        raise r.fail(
            ExportIntegrityError,
            "content_sha256",
            "manifest content does not match its hash (edited after export)",
        )
    cfg = _numerics(r, manifest)
    num_classes = r.get(manifest, "num_classes", int, "")
    tensors = _load_tensors(r, manifest, cfg, num_classes)
    model = _build_model(r, manifest, cfg, num_classes, tensors)
    try:
        check_overflow(model, allow_saturation=r.get(manifest, "allow_saturation", bool, ""))
    except OverflowRiskError as exc:
        raise r.fail(
            ExportRangeError, f"layers[{model.op_names.index(exc.op)}] ({exc.op}).{exc.field}", exc.reason
        ) from None
    vectors = _load_vectors(r, manifest, model, tensors) if "test_vectors" in manifest else None
    return Export(root, model, manifest, vectors)


def _numerics(r: _Reader, manifest: Mapping[str, Any]) -> nm.NumericsConfig:
    block = r.get(manifest, "numerics", dict, "")
    fields = ("weight_bits", "frac_bits", "membrane_bits", "leak_shift", "input_bits")
    values = {key: r.get(block, key, int, "numerics") for key in fields}
    extra = sorted(set(block) - set(fields))
    if extra:
        raise r.fail(ExportSchemaError, "numerics", f"unknown fields {extra}")
    try:
        return nm.NumericsConfig(**values)
    except (TypeError, ValueError) as exc:
        raise r.fail(ExportSchemaError, "numerics", str(exc)) from None


def _load_tensors(
    r: _Reader, manifest: Mapping[str, Any], cfg: nm.NumericsConfig, num_classes: int
) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor of the table, checked: ``name -> (role, int64 array)``."""
    table = r.get(manifest, "tensors", dict, "")
    out = {}
    for name, entry in table.items():
        where = f"tensors.{name}"
        rel = r.get(entry, "file", str, where)
        if not _FILE.match(rel) or ".." in rel:
            raise r.fail(
                ExportSchemaError, f"{where}.file", f"{rel!r} is not tensors/<name>.bin or vectors/<name>.bin"
            )
        role = r.get(entry, "role", str, where)
        if role not in ROLES:
            raise r.fail(ExportSchemaError, f"{where}.role", f"must be one of {ROLES}, not {role!r}")
        dtype = r.get(entry, "dtype", str, where)
        expected_dtype, lo, hi = _role_spec(role, cfg, num_classes)
        if dtype != expected_dtype:
            raise r.fail(
                ExportShapeError,
                f"{where}.dtype",
                f"{dtype!r} does not match the widths: role {role!r} is stored as {expected_dtype!r}",
            )
        shape = r.get(entry, "shape", list, where)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise r.fail(
                ExportSchemaError, f"{where}.shape", f"must be a list of non-negative integers, not {shape}"
            )
        sha = r.get(entry, "sha256", str, where)
        if not _SHA.match(sha):
            raise r.fail(ExportSchemaError, f"{where}.sha256", "must be 64 lowercase hex digits")
        file = r.root / rel
        if not file.is_file():
            raise r.fail(ExportIntegrityError, f"{where}.file", "file is missing", file)
        data = file.read_bytes()
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(data) != size:
            raise r.fail(
                ExportIntegrityError,
                f"{where}.file",
                f"{len(data)} bytes, expected {size} for {dtype} {shape} (truncated or padded)",
                file,
            )
        if hashlib.sha256(data).hexdigest() != sha:
            raise r.fail(
                ExportIntegrityError, f"{where}.sha256", "file content does not match its sha256", file
            )
        array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(np.int64)
        if array.size and ((lo is not None and array.min() < lo) or (hi is not None and array.max() > hi)):
            raise r.fail(
                ExportRangeError,
                where,
                f"values [{array.min()}, {array.max()}] outside the range "
                f"[{lo}, {hi}] of role {role!r} under the numerics widths",
                file,
            )
        out[name] = (role, array)
    return out


def _tensor(
    r: _Reader, tensors: Mapping[str, tuple[str, np.ndarray]], name: Any, where: str, role: str
) -> np.ndarray:
    if not isinstance(name, str) or name not in tensors:
        raise r.fail(ExportSchemaError, where, f"{name!r} is not in the tensor table")
    if tensors[name][0] != role:
        raise r.fail(
            ExportSchemaError, where, f"tensor {name!r} has role {tensors[name][0]!r}, expected {role!r}"
        )
    return tensors[name][1]


def _build_model(
    r: _Reader,
    manifest: Mapping[str, Any],
    cfg: nm.NumericsConfig,
    num_classes: int,
    tensors: Mapping[str, tuple[str, np.ndarray]],
) -> IntModel:
    inp = r.get(manifest, "input", dict, "")
    shape = r.get(inp, "shape", list, "input")
    timesteps = r.get(inp, "timesteps", int, "input")
    event = r.get(inp, "event", bool, "input")
    if r.get(inp, "input_max", int, "input") != cfg.input_max:
        raise r.fail(ExportSchemaError, "input.input_max", f"must equal 2**input_bits - 1 = {cfg.input_max}")
    layers = r.get(manifest, "layers", list, "")
    ops = []
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        name = r.get(layer, "name", str, where)
        kind = r.get(layer, "kind", str, where)
        if kind not in OP_KINDS:
            raise r.fail(
                ExportSchemaError, f"{where}.kind", f"must be one of {sorted(OP_KINDS)}, not {kind!r}"
            )
        roles = r.get(layer, "tensors", dict, where)
        op_tensors = {}
        for role, tname in roles.items():
            stored = f"head_{role}" if kind == "head" else role
            op_tensors[role] = _tensor(r, tensors, tname, f"{where}.tensors.{role}", stored)
        lif, reference = layer.get("lif"), layer.get("reference")
        try:
            ops.append(
                Op(
                    name=name,
                    kind=kind,
                    inputs=tuple(r.get(layer, "inputs", list, where)),
                    params=r.get(layer, "params", dict, where),
                    tensors=op_tensors,
                    lif=lif if isinstance(lif, str) else None,
                    reference=reference if isinstance(reference, dict) else {},
                )
            )
        except IntModelError as exc:
            raise r.fail(ExportSchemaError, f"{where}.{exc.field}", exc.reason) from None
    try:
        model = IntModel(
            numerics=cfg,
            input_shape=tuple(shape),
            timesteps=timesteps,
            num_classes=num_classes,
            ops=tuple(ops),
            preset=str(manifest.get("preset", "")),
            model_config=manifest.get("model_config") or {},
            event=event,
        )
    except (IntModelError, TypeError) as exc:
        if not isinstance(exc, IntModelError):
            raise r.fail(ExportSchemaError, "input", str(exc)) from None
        cls = {"shape": ExportShapeError, "range": ExportRangeError}.get(exc.category, ExportSchemaError)
        index = [op.name for op in ops].index(exc.op) if exc.op in [op.name for op in ops] else None
        field_ = f"layers[{index}] ({exc.op}).{exc.field}" if index is not None else exc.field
        raise r.fail(cls, field_, exc.reason) from None
    for i, (layer, op) in enumerate(zip(layers, model.ops, strict=True)):
        declared = r.get(layer, "shape", list, f"layers[{i}]")
        if tuple(declared) != model.shapes[op.name]:
            raise r.fail(
                ExportShapeError,
                f"layers[{i}] ({op.name}).shape",
                f"declared {declared}, but the graph gives {list(model.shapes[op.name])}",
            )
    return model


def _allowed_vector_shapes(
    model: IntModel, count: int, key: str, name: str = "", traced: int | None = None
) -> list[tuple[int, ...]]:
    """Shapes a stored test vector may have: ``key`` is ``inputs``, ``labels``, ``logits``,
    ``outputs`` or ``currents`` (the last two of op ``name``, in the trace layout, for the
    first ``traced`` samples; ``None``: all ``count``)."""
    if key == "inputs":
        step, t = model.input_shape, model.timesteps
        return [(count, t, *step)] if model.event else [(count, *step), (count, t, *step)]
    if key == "labels":
        return [(count,)]
    if key == "logits":
        return [(count, model.num_classes)]
    shape = model.shapes[name]
    return [(shape[0], count if traced is None else traced, *shape[1:])]


def _vector_shape_problem(
    model: IntModel, count: int, key: str, name: str, shape: tuple[int, ...], traced: int | None = None
) -> str:
    """Why a stored test vector of ``shape`` does not fit (``""``: it fits)."""
    allowed = _allowed_vector_shapes(model, count, key, name, traced)
    if tuple(shape) in allowed:
        return ""
    return f"shape {list(shape)}, expected {' or '.join(str(list(a)) for a in allowed)}"


def _vector_op_problem(model: IntModel, key: str, name: str) -> str:
    """Why op ``name`` cannot have a stored ``outputs`` / ``currents`` vector (``""``: it can).

    A stored vector that :func:`check_test_vectors` would not compare is refused too: it
    would look verified without being so.
    """
    if name not in model.op_names:
        return f"{name!r} is not an op of the model"
    kind = model.op(name).kind
    if key == "currents" and kind not in LIF_KINDS:
        return f"op {name!r} ({kind}) has no LIF, so no input current is traced"
    if key == "outputs" and kind == "head":
        return "the head's output is stored as test_vectors.logits"
    return ""


def _vector_file(root: Path, manifest: Mapping[str, Any], tensor: str) -> Path:
    """The file of vector tensor ``tensor``, or the manifest where the table does not name one."""
    table = manifest.get("tensors")
    entry = table.get(tensor) if isinstance(table, Mapping) else None
    rel = entry.get("file") if isinstance(entry, Mapping) else None
    return root / rel if isinstance(rel, str) else root / MANIFEST


def _load_vectors(
    r: _Reader, manifest: Mapping[str, Any], model: IntModel, tensors: Mapping[str, tuple[str, np.ndarray]]
) -> TestVectors:
    block = r.get(manifest, "test_vectors", dict, "")
    count = r.get(block, "count", int, "test_vectors")
    # Exports written before traces could be limited store them for every sample.
    traced = r.get(block, "traced", int, "test_vectors") if "traced" in block else count
    if not 0 <= traced <= count:
        raise r.fail(ExportSchemaError, "test_vectors.traced", f"{traced} is not in [0, count = {count}]")

    def load(key: str, tname: Any, role: str, name: str = "") -> np.ndarray:
        where = f"test_vectors.{key}" + (f".{name}" if name else "")
        array = _tensor(r, tensors, tname, where, role)
        problem = _vector_shape_problem(model, count, key, name, array.shape, traced)
        if problem:
            # The stored file holds the bad array: name it, as the range and hash checks do.
            raise r.fail(
                ExportShapeError, where, f"tensor {tname!r}: {problem}", _vector_file(r.root, manifest, tname)
            )
        return array

    inputs = load("inputs", block.get("inputs"), "input")
    labels = load("labels", block.get("labels"), "labels")
    logits = load("logits", block.get("logits"), "logits")
    outputs, currents = {}, {}
    for key, store in (("outputs", outputs), ("currents", currents)):
        for name, tname in r.get(block, key, dict, "test_vectors").items():
            problem = _vector_op_problem(model, key, name)
            if problem:
                raise r.fail(ExportSchemaError, f"test_vectors.{key}.{name}", problem)
            role = "current" if key == "currents" else _output_role(model.op(name))
            store[name] = load(key, tname, role, name)
    return TestVectors(inputs, labels, logits, outputs, currents, None if traced == count else traced)


def _check_vector_shapes(export: Export, vec: TestVectors) -> None:
    """The shape checks of :func:`load_export` on ``vec``, the vectors of ``export``, which may
    have been built in memory rather than loaded; the sample count is that of the inputs."""
    model = export.model
    block = export.manifest.get("test_vectors") if isinstance(export.manifest, Mapping) else None
    names = block if isinstance(block, Mapping) else {}
    shape = np.shape(vec.inputs)
    count = int(shape[0]) if shape else -1
    fields: list[tuple[str, str, Any, Any]] = [
        ("inputs", "", vec.inputs, names.get("inputs")),
        ("labels", "", vec.labels, names.get("labels")),
        ("logits", "", vec.logits, names.get("logits")),
    ]
    for key, store in (("outputs", vec.outputs), ("currents", vec.currents)):
        stored = names.get(key) if isinstance(names.get(key), Mapping) else {}
        fields += [(key, name, array, stored.get(name)) for name, array in store.items()]
    for key, name, array, tname in fields:
        where = f"test_vectors.{key}" + (f".{name}" if name else "")
        file = _vector_file(export.path, export.manifest, tname) if isinstance(tname, str) else None
        problem = _vector_op_problem(model, key, name) if name else ""
        if problem:
            raise ExportSchemaError(export.path / MANIFEST, where, problem)
        problem = _vector_shape_problem(model, count, key, name, np.shape(array), vec.traced)
        if problem:
            raise ExportShapeError(file or export.path / MANIFEST, where, problem)


def check_test_vectors(export: Export) -> int:
    """Rerun the stored inputs; raise :class:`ExportMismatchError` at the first differing value.

    The vectors' shapes are checked first, as :func:`load_export` does
    (:class:`ExportShapeError`), since an :class:`Export` may also be built in memory.
    Returns the number of samples checked.
    """
    vec = export.vectors
    if vec is None:
        raise ExportSchemaError(export.path / MANIFEST, "test_vectors", "the export holds no test vectors")
    _check_vector_shapes(export, vec)
    logits = export.model.run(vec.inputs)[0]
    trace = export.model.run(vec.inputs[: vec.traced_count], trace=True)[1] if vec.traced_count else {}
    expected = {**vec.outputs, **{f"{k}.current": v for k, v in vec.currents.items()}, "logits": vec.logits}
    actual = {**trace, "logits": logits}
    order = [n for n in trace if n in expected] + ["logits"]
    mismatch = compare_traces(expected, actual, names=order)
    if mismatch is not None:
        raise ExportMismatchError(export.path / MANIFEST, f"test_vectors ({mismatch.name})", str(mismatch))
    return vec.count
