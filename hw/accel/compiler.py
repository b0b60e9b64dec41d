"""Compile an integer model (:class:`golden.intmodel.IntModel`) into an accelerator :class:`Program`.

The compiler walks the model's ops in execution order, places every value in the
activation memory (best fit; a value is freed after its last reader), and emits one
command per op with its constant payload (docs/accelerator.md, "Stream protocol"):

* ``conv`` -> ``CONV``; ``linear`` -> ``CONV`` on a ``1 x N`` image with a 1x1 kernel;
* ``maxpool`` -> ``POOL`` (spike inputs only); ``tokens`` -> nothing (the activation
  layout of ``[C, H, W]`` is already the token layout ``[N = H W, D = C]``);
* ``attention`` -> ``ATTENTION``; ``add`` -> ``ADD``; ``head`` -> ``HEAD`` (logits packet).

With ``trace=True`` a ``STORE`` after every op streams its output back, so a mismatch
can be located (:meth:`Program.decode` returns them in the integer model's trace layout).

A conv stage (a conv and the max-pool that is its only reader) whose tensors do not fit
the free activation memory runs band tiled (:mod:`hw.accel.banding`): bands of rows in
from and out to host tensors, the program split into segments where the host must feed
back what it received (docs/accelerator.md, sections 3 and 6). The sample itself starts
in host memory and is LOADed whole by its first resident reader, so a model that fits
compiles exactly as before: one segment, the input LOAD first.
Everything a configuration cannot hold raises :class:`CompileError` naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.intmodel import IntModel, Op
from golden.overflow import overflow_report, signed_bits
from hw.accel.banding import banded_stage
from hw.accel.bands import BandedStage
from hw.accel.config import STREAM_BITS, AcceleratorConfig
from hw.accel.descriptors import Descriptor, DescriptorError, Grouping, Opcode
from hw.accel.program import (
    Command,
    HostSlice,
    HostTensor,
    OutputSpec,
    Program,
    pack_fields,
    stream_words_for,
)

__all__ = ["CompileError", "compile_model"]


class CompileError(ValueError):
    """The model cannot run on the configuration; names the op and the limit."""

    def __init__(self, op: str, reason: str) -> None:
        self.op, self.reason = op, reason
        super().__init__(f"op {op!r}: {reason}" if op else reason)


@dataclass
class _Region:
    start: int
    size: int
    last_use: int = -1


@dataclass
class _Value:
    region: _Region | None  # None: the value is only in host memory (``host``)
    positions: int  # H W (image-like) or N (tokens)
    channels: int
    planes: int
    shape: tuple[int, ...]  # trace layout without batch: (T, C, H, W) or (T, N, D)
    host: str | None = None  # host tensor holding the whole value (band-tiled programs)

    @property
    def words(self) -> int:
        return self.positions * self.channels * self.planes


class _Allocator:
    """Best-fit allocation of activation-memory regions (the smallest free block that fits)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.free: list[tuple[int, int]] = [(0, depth)]

    def trial(self) -> _Allocator:
        """A copy to try allocations on without touching this one."""
        copy = _Allocator(self.depth)
        copy.free = list(self.free)
        return copy

    def fits(self, sizes: list[int]) -> bool:
        """Whether regions of ``sizes`` can all be allocated now (tried on a copy)."""
        trial = self.trial()
        try:
            for size in sizes:
                trial.alloc(size, "")
        except CompileError:
            return False
        return True

    def alloc(self, size: int, op: str) -> _Region:
        fits = [(length, i) for i, (_, length) in enumerate(self.free) if length >= size]
        if fits:
            _, i = min(fits)
            start, length = self.free[i]
            self.free[i] = (start + size, length - size)
            if self.free[i][1] == 0:
                del self.free[i]
            return _Region(start, size)
        free = sum(length for _, length in self.free)
        raise CompileError(
            op,
            f"needs {size} activation words but the largest free block holds "
            f"{max((length for _, length in self.free), default=0)} ({free} free of "
            f"{self.depth}); use a configuration with a larger amem_depth",
        )

    def release(self, region: _Region) -> None:
        self.free.append((region.start, region.size))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for start, length in self.free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((start, length))
        self.free = merged


class _Builder:
    def __init__(self, model: IntModel, cfg: AcceleratorConfig, trace: bool) -> None:
        self.model, self.cfg, self.trace = model, cfg, trace
        self.bounds = overflow_report(model).by_name()
        self.alloc = _Allocator(cfg.amem_depth)
        self.values: dict[str, _Value] = {}
        self.commands: list[Command] = []
        self.outputs: list[OutputSpec] = []
        self.op_commands: dict[str, list[int]] = {}
        self.t = model.timesteps
        # Band tiling (docs/accelerator.md, section 6): host tensors, segments, stages.
        self.tensors: dict[str, HostTensor] = {}
        self.segment_starts: list[int] = []
        self.pending: set[str] = set()  # host tensors the current segment writes
        self.stages: list[BandedStage] = []
        self.last_use: dict[str, int] = {}

    # -------------------------------------------------------------- helpers
    def emit(
        self,
        op: str,
        opcode: Opcode,
        payload: np.ndarray | None = None,
        *,
        is_input: bool = False,
        feed: HostSlice | None = None,
        **fields: int,
    ) -> None:
        index = len(self.commands)
        first = self.segment_starts[-1] if self.segment_starts else 0
        descriptor = Descriptor(opcode, index - first, {k: int(v) for k, v in fields.items() if v})
        try:
            descriptor.validate(self.cfg)
        except DescriptorError as exc:
            raise CompileError(op, str(exc)) from None
        payload = np.zeros(0, dtype=np.uint64) if payload is None else payload.astype(np.uint64)
        self.commands.append(Command(descriptor, payload, op, is_input, feed))
        self.op_commands.setdefault(op, []).append(index)

    def new_value(
        self, name: str, positions: int, channels: int, planes: int, shape: tuple[int, ...]
    ) -> _Value:
        value = _Value(
            self.alloc.alloc(positions * channels * planes, name), positions, channels, planes, shape
        )
        self.values[name] = value
        return value

    def planes_of(self, op: Op) -> int:
        return max(1, int(self.bounds[op.name].output_max).bit_length())

    def store(self, name: str) -> None:
        value = self.values[name]
        count = value.region.size
        self.emit(f"trace:{name}", Opcode.STORE, src0=value.region.start, count=count)
        self.outputs.append(
            OutputSpec(name, stream_words_for(count, self.cfg.timesteps), value.shape, value.planes, count)
        )

    def check_acc(self, op: Op, bits: int, what: str) -> None:
        need = signed_bits(*self.bounds[op.name].acc_range)
        if need > bits:
            raise CompileError(
                op.name,
                f"accumulator range {self.bounds[op.name].acc_range} needs {need} "
                f"bits, the configuration's {what} has {bits}",
            )

    # -------------------------------------------------------------- ops
    def input(self) -> None:
        # The sample starts in host memory; its first reader loads it whole (command 0 of
        # a program that fits) unless that reader is band tiled and loads bands of it.
        c, h, w = self.model.input_shape
        planes = self.model.numerics.input_bits
        value = _Value(None, h * w, c, planes, (self.t, c, h, w), host="input")
        self.values["input"] = value
        self.tensors["input"] = HostTensor("input", value.words, value.shape, planes)

    def resident(self, name: str) -> _Value:
        """The value ``name`` in the activation memory, LOADed whole from the host if it is not."""
        value = self.values[name]
        if value.region is not None:
            return value
        if value.host is None:  # a band-tiled conv output only its fused pool read
            raise CompileError(name, "value is neither in the activation memory nor in host memory")
        region = self.alloc.alloc(value.words, name)
        if name == "input":
            self.emit(name, Opcode.LOAD, is_input=True, dst=region.start, count=region.size)
        else:
            self.feed(name, HostSlice(value.host, 0, value.words), dst=region.start)
        value.region = region
        return value

    def value_in_host(
        self, host: str | None, positions: int, channels: int, shape: tuple[int, ...]
    ) -> _Value:
        """A spike value held only in the host tensor ``host`` (``None``: nowhere, no reader left)."""
        return _Value(None, positions, channels, 1, shape, host=host)

    def feed(self, name: str, part: HostSlice, *, dst: int) -> None:
        """A LOAD of host words; a new segment starts first if this segment writes them."""
        if part.tensor in self.pending:
            self.cut()
        self.emit(name, Opcode.LOAD, feed=part, dst=dst, count=part.count)

    def send(self, name: str, command: str, *, src: int, part: HostSlice) -> None:
        """A STORE of activation words into a slice of a host tensor."""
        self.emit(command, Opcode.STORE, src0=src, count=part.count)
        tensor = self.tensors[part.tensor]
        self.outputs.append(
            OutputSpec(
                name, stream_words_for(part.count, self.cfg.timesteps), tensor.shape, tensor.planes,
                part.count, part,
            )
        )
        self.pending.add(part.tensor)

    def cut(self) -> None:
        """End the segment: the host must feed words this segment stores into the next one."""
        self.emit("end", Opcode.END)
        self.segment_starts.append(len(self.commands))
        self.pending.clear()

    def synapse(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        fields = self.conv_fields(op, src)
        out_c, oh, ow = fields["out_c"], fields["out_h"], fields["out_w"]
        image = op.tensors["weight"].ndim == 4
        shape = (self.t, out_c, oh, ow) if image else (self.t, src.positions, out_c)
        dst = self.new_value(op.name, oh * ow, out_c, 1, shape)
        self.emit(
            op.name, Opcode.CONV, self.conv_payload(op), src0=src.region.start, dst=dst.region.start, **fields
        )

    def conv_fields(self, op: Op, src: _Value) -> dict[str, int]:
        """The ``CONV`` descriptor fields of ``op`` over its whole input (a band replaces
        ``in_h``, ``out_h`` and ``pad_top``); a linear layer is a ``1 x N`` image, 1x1 kernel."""
        weight = op.tensors["weight"]
        if weight.ndim == 4:
            out_c, in_c, k, _ = weight.shape
            _, _, oh, ow = self.model.shapes[op.name]
            _, _, ih, iw = src.shape
            stride, pad = op.params["stride"], op.params["padding"]
        else:
            out_c, in_c = weight.shape
            k, stride, pad, ih, iw, oh, ow = 1, 1, 0, 1, src.positions, 1, src.positions
        return dict(
            timesteps=self.t, in_h=ih, in_w=iw, in_c=in_c, planes_in=src.planes, out_h=oh, out_w=ow,
            out_c=out_c, kernel=k, stride=stride, pad_top=pad, pad_left=pad,
        )

    def conv_payload(self, op: Op) -> np.ndarray:
        """The ``CONV`` payload of ``op`` (fan-in order ``(dy, dx, c)``); checks its accumulator."""
        self.check_acc(op, self.cfg.acc_bits, "synapse accumulator (acc_bits)")
        weight = op.tensors["weight"]
        taps = weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1) if weight.ndim == 4 else weight
        return self.synapse_payload(taps, op.tensors["bias"], op.tensors["threshold"])

    def synapse_payload(self, taps: np.ndarray, bias: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Per output-channel group: ``L`` parameter words, then ``fan_in`` weight-memory words."""
        cfg = self.cfg
        lanes, out_c = cfg.lanes, taps.shape[0]
        groups = -(-out_c // lanes)
        never = 1 << (cfg.numerics.membrane_bits - 1)  # above every membrane value: never fires
        padded_w = np.zeros((groups * lanes, taps.shape[1]), dtype=np.int64)
        padded_w[:out_c] = taps
        padded_b = np.zeros(groups * lanes, dtype=np.int64)
        padded_b[:out_c] = bias
        padded_t = np.full(groups * lanes, never, dtype=np.int64)
        padded_t[:out_c] = threshold
        params = (padded_b & 0xFFFF_FFFF) | ((padded_t & 0xFFFF_FFFF) << 32)
        parts = []
        for g in range(groups):
            rows = slice(g * lanes, (g + 1) * lanes)
            parts.append(params[rows].astype(np.uint64))
            words = pack_fields(padded_w[rows].T, cfg.numerics.weight_bits)  # [fan_in, WPW]
            parts.append(words.reshape(-1))
        return np.concatenate(parts)

    def maxpool(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        if src.planes != 1:
            raise CompileError(
                op.name, f"max-pool runs on spikes only; its input has {src.planes} bit planes"
            )
        fields = self.pool_fields(op)
        c, oh, ow = fields["in_c"], fields["out_h"], fields["out_w"]
        dst = self.new_value(op.name, oh * ow, c, 1, (self.t, c, oh, ow))
        self.emit(op.name, Opcode.POOL, src0=src.region.start, dst=dst.region.start, **fields)

    def pool_fields(self, op: Op) -> dict[str, int]:
        """The ``POOL`` descriptor fields of ``op`` over its whole input (a band replaces
        ``in_h``, ``out_h`` and ``pad_top``)."""
        _, c, ih, iw = self.model.shapes[op.inputs[0]]
        _, _, oh, ow = self.model.shapes[op.name]
        p = op.params
        return dict(
            timesteps=self.t, in_h=ih, in_w=iw, in_c=c, out_h=oh, out_w=ow, planes_in=1,
            kernel=p["kernel"], stride=p["stride"], pad_top=p["padding"], pad_left=p["padding"],
        )

    def tokens(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        t, c, h, w = src.shape
        self.values[op.name] = _Value(src.region, h * w, c, src.planes, (t, h * w, c))

    def attention(self, op: Op) -> None:
        q, k, v = (self.values[name] for name in op.inputs)
        if max(q.planes, k.planes, v.planes) != 1:
            raise CompileError(op.name, "attention inputs must be spikes (one bit plane)")
        heads = op.params["heads"]
        n, d = q.positions, q.channels
        self.check_acc(op, self.cfg.numerics.membrane_bits + 1, "attention current")
        dst = self.new_value(op.name, n, d, 1, (self.t, n, d))
        self.emit(
            op.name,
            Opcode.ATTENTION,
            src0=q.region.start,
            src1=k.region.start,
            src2=v.region.start,
            dst=dst.region.start,
            timesteps=self.t,
            in_w=n,
            in_c=d,
            heads=heads,
            head_dim=d // heads,
            grouping=Grouping[op.params["grouping"].upper()],
            threshold=op.params["threshold"],
        )

    def add(self, op: Op) -> None:
        a, b = (self.values[name] for name in op.inputs)
        planes = self.planes_of(op)
        dst = self.new_value(op.name, a.positions, a.channels, planes, a.shape)
        self.emit(
            op.name,
            Opcode.ADD,
            src0=a.region.start,
            src1=b.region.start,
            dst=dst.region.start,
            count=a.positions * a.channels,
            planes_in=a.planes,
            planes_in2=b.planes,
            planes_out=planes,
        )

    def head(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        cfg = self.cfg
        self.check_acc(op, cfg.head_acc_bits, "head accumulator (head_acc_bits)")
        pooled_max = self.t * src.positions * ((1 << src.planes) - 1)
        if pooled_max.bit_length() > cfg.pool_bits:
            raise CompileError(
                op.name, f"sum-pool bound {pooled_max} exceeds the {cfg.pool_bits}-bit pool memory"
            )
        weight, bias = op.tensors["weight"], op.tensors["bias"]
        classes, d = weight.shape
        per = STREAM_BITS // cfg.numerics.weight_bits
        padded = np.zeros((classes, -(-d // per) * per), dtype=np.int64)
        padded[:, :d] = weight
        words = pack_fields(padded, cfg.numerics.weight_bits)  # [classes, D / per]
        payload = np.concatenate([bias.astype(np.int64).view(np.uint64)[:, None], words], axis=1).reshape(-1)
        self.emit(
            op.name,
            Opcode.HEAD,
            payload,
            src0=src.region.start,
            timesteps=self.t,
            in_w=src.positions,
            in_c=d,
            planes_in=src.planes,
            classes=classes,
        )
        self.outputs.append(OutputSpec("logits", classes, (classes,)))

    # -------------------------------------------------------------- driver
    def build(self) -> Program:
        model, cfg = self.model, self.cfg
        if model.numerics != cfg.numerics:
            raise CompileError(
                "",
                f"model numerics {model.numerics.to_dict()} differ from configuration "
                f"{cfg.name!r} numerics {cfg.numerics.to_dict()}",
            )
        if model.timesteps > cfg.timesteps:
            raise CompileError(
                "",
                f"model has {model.timesteps} time steps, configuration {cfg.name!r} holds {cfg.timesteps}",
            )
        last_use = self.last_use
        last_use["input"] = -1
        for i, op in enumerate(model.ops):
            for name in op.inputs:
                last_use[name] = i
        handlers = {
            "conv": self.synapse,
            "linear": self.synapse,
            "maxpool": self.maxpool,
            "tokens": self.tokens,
            "attention": self.attention,
            "add": self.add,
            "head": self.head,
        }
        self.input()
        i = 0
        while i < len(model.ops):
            op = model.ops[i]
            stage = self.oversize_stage(i)
            if stage:
                banded_stage(self, i, *stage)
                for j in range(i, i + len(stage)):
                    self.retire(j, model.ops[j])
                i += len(stage)
                continue
            for name in op.inputs:
                self.resident(name)
            handlers[op.kind](op)
            if self.trace and op.kind != "head":
                self.store(op.name)
            self.retire(i, op)
            i += 1
        self.emit("end", Opcode.END)
        return Program(
            config=cfg,
            commands=tuple(self.commands),
            outputs=tuple(self.outputs),
            input_shape=model.input_shape,
            timesteps=model.timesteps,
            input_planes=model.numerics.input_bits,
            event=model.event,
            num_classes=model.num_classes,
            op_commands={k: tuple(v) for k, v in self.op_commands.items()},
            segment_starts=tuple(self.segment_starts),
            tensors=tuple(self.tensors.values()) if self.stages else (),
            stages=tuple(self.stages),
        )

    def retire(self, i: int, op: Op) -> None:
        """Free the regions whose last reader is op ``i`` (an alias such as `tokens` keeps its
        source alive)."""
        last_use = self.last_use
        for name in op.inputs:
            region = self.values[name].region
            if region is not None:
                region.last_use = max(region.last_use, last_use[name])
        value = self.values.get(op.name)
        if value is not None and value.region is not None:
            value.region.last_use = max(value.region.last_use, last_use.get(op.name, i))
        live = {id(v.region): v.region for v in self.values.values() if v.region is not None}
        for region in live.values():
            if region.last_use <= i and region.size:
                self.alloc.release(region)
                region.size = 0

    # -------------------------------------------------------------- band tiling
    def oversize_stage(self, i: int) -> list[Op]:
        """The ops of a conv stage at op ``i`` that must run band tiled, else ``[]``.

        A stage is an image conv and the max-pool that is its only reader. It is band
        tiled when it cannot run resident: its input (loaded whole if it is in host
        memory), its output and the pool's output do not fit the free activation memory.
        """
        ops = self.model.ops
        conv = ops[i]
        if conv.kind != "conv":
            return []
        stage = [conv]
        if (
            i + 1 < len(ops)
            and ops[i + 1].kind == "maxpool"
            and ops[i + 1].inputs[0] == conv.name
            and self.last_use.get(conv.name) == i + 1
        ):
            stage.append(ops[i + 1])
        src = self.values[conv.inputs[0]]
        trial = self.alloc.trial()
        try:
            region = trial.alloc(src.words, "") if src.region is None else src.region
            _, c, oh, ow = self.model.shapes[conv.name]
            trial.alloc(oh * ow * c, "")
            if len(stage) == 2:
                if self.last_use[conv.inputs[0]] == i and region.size:
                    trial.release(region)  # the conv's input dies before the pool runs
                _, c, ph, pw = self.model.shapes[stage[1].name]
                trial.alloc(ph * pw * c, "")
        except CompileError:
            return stage
        return []


def compile_model(model: IntModel, config: AcceleratorConfig, *, trace: bool = False) -> Program:
    """Compile ``model`` for ``config``.

    Parameters
    ----------
    model:
        The integer model (e.g. ``golden.export.load_export(path).model``).
    config:
        The accelerator configuration the program will run on.
    trace:
        Stream every op's output back after the op (debugging and per-layer comparison).

    Raises
    ------
    CompileError
        When a value, weight block, group or width does not fit the configuration (an
        oversize conv stage is band tiled first; the error names it when not even a band
        of one output row fits).
    """
    if not isinstance(model, IntModel):
        raise TypeError(f"compile_model needs a golden.intmodel.IntModel, not {type(model).__name__}")
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"compile_model needs an AcceleratorConfig, not {type(config).__name__}")
    return _Builder(model, config, trace).build()
