"""Compile an integer model (:class:`contract.intmodel.IntModel`) into an accelerator :class:`Program`.

:class:`ProgramBuilder` walks the model's ops in execution order, places every value in
the activation memory (:mod:`protocol.compiler.alloc`; a value is freed after its last
reader, and an ``ADD`` writes its sum over an operand it reads for the last time when the
two have as many bit planes), and emits one command per op with its constant payload
(:mod:`protocol.compiler.payloads`; docs/accelerator.md, "Stream protocol"):

* ``conv`` -> ``CONV``; ``conv_maxpool`` -> ``CONV`` with its pool of currents before the
  LIF (descriptor fields ``pool_*``); ``linear`` -> ``CONV`` on a ``1 x N`` image with a 1x1 kernel;
* ``maxpool`` -> ``POOL`` (spike inputs only); ``tokens`` -> nothing (the activation
  layout of ``[C, H, W]`` is already the token layout ``[N = H W, D = C]``);
* ``attention`` -> ``ATTENTION``; ``add`` -> ``ADD``; ``head`` -> ``HEAD`` (logits packet);
* ``add_const`` -> a ``LOAD`` whose payload is the constant (a program constant, like the
  weights; no host tensor), then ``ADD``.

With ``trace=True`` a ``STORE`` after every op streams its output back, so a mismatch
can be located (:meth:`Program.decode` returns them in the integer model's trace layout).

A conv stage (a conv and the max-pool that is its only reader, or a conv that pools its
currents) whose tensors do not fit
the free activation memory runs band tiled: the builder hands itself to
:func:`protocol.compiler.banding.banded_stage`, which uses only its public surface (the
:class:`~protocol.compiler.banding.StageBuilder` protocol): bands of rows in from and out
to host tensors, the program split into segments where the host must feed back what it
received (docs/accelerator.md, sections 3 and 6). The sample itself starts in host memory
and is LOADed whole by its first resident reader, so a model that fits compiles exactly
as before: one segment, the input LOAD first.
Everything a configuration cannot hold raises :class:`CompileError` naming the op.
"""

from __future__ import annotations

import numpy as np

from contract.intmodel import IntModel, Op
from contract.overflow import overflow_report, signed_bits
from protocol.bands import BandedStage
from protocol.compiler.alloc import Allocator
from protocol.compiler.banding import banded_stage
from protocol.compiler.errors import CompileError
from protocol.compiler.payloads import head_payload, synapse_payload
from protocol.compiler.values import Value
from protocol.config import AcceleratorConfig
from protocol.descriptors import Descriptor, DescriptorError, Grouping, Opcode
from protocol.program import (
    Command,
    HostSlice,
    HostTensor,
    OutputSpec,
    Program,
    activation_words,
    stream_words_for,
    words_to_stream,
)

__all__ = ["ProgramBuilder", "compile_model"]


class ProgramBuilder:
    """Builds the :class:`Program` of one model on one configuration (:meth:`build`, once).

    The public attributes and methods below are what the band tiler
    (:mod:`protocol.compiler.banding`) works through; the op handlers are private.

    Parameters
    ----------
    model, cfg:
        The integer model and the configuration it is compiled for.
    trace:
        Stream every op's output back after the op.

    Attributes
    ----------
    model, cfg, trace:
        As given.
    t:
        The model's time steps.
    alloc:
        The activation-memory allocator.
    values:
        Every model value placed so far, by op name (``"input"`` for the sample).
    tensors:
        Host tensors of the program (the input, and the values around band-tiled stages).
    stages:
        The band-tiled stages emitted so far.
    last_use:
        Index of the last model op that reads each value.
    """

    def __init__(
        self, model: IntModel, cfg: AcceleratorConfig, trace: bool, in_place_adds: bool = False
    ) -> None:
        self.model, self.cfg, self.trace = model, cfg, trace
        self.in_place_adds = in_place_adds
        self.t = model.timesteps
        self.alloc = Allocator(cfg.amem_depth)
        self.values: dict[str, Value] = {}
        self.tensors: dict[str, HostTensor] = {}
        self.stages: list[BandedStage] = []
        self.last_use: dict[str, int] = {}
        self._op_index: dict[str, int] = {}
        self._bounds = overflow_report(model).by_name()
        self._commands: list[Command] = []
        self._outputs: list[OutputSpec] = []
        self._op_commands: dict[str, list[int]] = {}
        self._segment_starts: list[int] = []
        self._pending: set[str] = set()  # host tensors the current segment writes

    # -------------------------------------------------------------- public surface
    @property
    def command_count(self) -> int:
        """Commands emitted so far (the index the next command gets in the program)."""
        return len(self._commands)

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
        """Append one command for ``op``: the descriptor of ``opcode`` with the non-zero
        ``fields``, validated against the configuration, and its ``payload``.

        Parameters
        ----------
        op:
            The name the command is listed under (an op name, ``trace:<op>``, ``end``, ...).
        opcode, fields:
            The descriptor; its index counts from the start of the current segment.
        payload:
            Constant stream words that follow the descriptor, if any.
        is_input, feed:
            A LOAD of the sample, or a LOAD of a slice of a host tensor.

        Raises
        ------
        CompileError
            Naming ``op`` when a field does not fit the configuration.
        """
        index = len(self._commands)
        first = self._segment_starts[-1] if self._segment_starts else 0
        descriptor = Descriptor(opcode, index - first, {k: int(v) for k, v in fields.items() if v})
        try:
            descriptor.validate(self.cfg)
        except DescriptorError as exc:
            raise CompileError(op, str(exc)) from None
        payload = np.zeros(0, dtype=np.uint64) if payload is None else payload.astype(np.uint64)
        self._commands.append(Command(descriptor, payload, op, is_input, feed))
        self._op_commands.setdefault(op, []).append(index)

    def new_value(
        self, name: str, positions: int, channels: int, planes: int, shape: tuple[int, ...]
    ) -> Value:
        """Place the value ``name`` in a new activation-memory region and record it in :attr:`values`."""
        value = Value(
            self.alloc.alloc(positions * channels * planes, name), positions, channels, planes, shape
        )
        self.values[name] = value
        return value

    def evict(self, name: str) -> None:
        """Free the activation region of the value ``name``; it stays reachable only through its
        host tensor (if any)."""
        value = self.values[name]
        self.alloc.release(value.region)
        value.region.size = 0  # released: the end-of-op sweep must not release it again
        value.region = None

    def feed(self, name: str, part: HostSlice, *, dst: int) -> None:
        """A LOAD of host words; a new segment starts first if this segment writes them."""
        if part.tensor in self._pending:
            self._cut()
        self.emit(name, Opcode.LOAD, feed=part, dst=dst, count=part.count)

    def send(self, name: str, command: str, *, src: int, part: HostSlice) -> None:
        """A STORE (listed as ``command``) of activation words into a slice of the host tensor of
        value ``name``."""
        self.emit(command, Opcode.STORE, src0=src, count=part.count)
        tensor = self.tensors[part.tensor]
        self._outputs.append(
            OutputSpec(
                name,
                stream_words_for(part.count, self.cfg.timesteps),
                tensor.shape,
                tensor.planes,
                part.count,
                part,
            )
        )
        self._pending.add(part.tensor)

    def conv_fields(self, op: Op, src: Value) -> dict[str, int]:
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
        fields = dict(
            timesteps=self.t,
            in_h=ih,
            in_w=iw,
            in_c=in_c,
            planes_in=src.planes,
            out_h=oh,
            out_w=ow,
            out_c=out_c,
            kernel=k,
            stride=stride,
            pad_top=pad,
            pad_left=pad,
        )
        if op.kind == "conv_maxpool":  # out_h, out_w above are the pooled ones
            fields.update(
                pool_kernel=op.params["pool_kernel"],
                pool_stride=op.params["pool_stride"],
                pool_padding=op.params["pool_padding"],
                pool_pad_top=op.params["pool_padding"],
            )
        return fields

    def conv_payload(self, op: Op) -> np.ndarray:
        """The ``CONV`` payload of ``op`` (fan-in order ``(dy, dx, c)``); checks its accumulator.

        Raises
        ------
        CompileError
            When the op's accumulator range needs more than ``acc_bits``.
        """
        self._check_acc(op, self.cfg.acc_bits, "synapse accumulator (acc_bits)")
        weight = op.tensors["weight"]
        taps = weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1) if weight.ndim == 4 else weight
        return synapse_payload(self.cfg, taps, op.tensors["bias"], op.tensors["threshold"])

    def pool_fields(self, op: Op) -> dict[str, int]:
        """The ``POOL`` descriptor fields of ``op`` over its whole input (a band replaces
        ``in_h``, ``out_h`` and ``pad_top``)."""
        _, c, ih, iw = self.model.shapes[op.inputs[0]]
        _, _, oh, ow = self.model.shapes[op.name]
        p = op.params
        return dict(
            timesteps=self.t,
            in_h=ih,
            in_w=iw,
            in_c=c,
            out_h=oh,
            out_w=ow,
            planes_in=1,
            kernel=p["kernel"],
            stride=p["stride"],
            pad_top=p["padding"],
            pad_left=p["padding"],
        )

    # -------------------------------------------------------------- helpers
    def _planes_of(self, op: Op) -> int:
        return max(1, int(self._bounds[op.name].output_max).bit_length())

    def _store(self, name: str) -> None:
        value = self.values[name]
        count = value.region.size
        self.emit(f"trace:{name}", Opcode.STORE, src0=value.region.start, count=count)
        self._outputs.append(
            OutputSpec(name, stream_words_for(count, self.cfg.timesteps), value.shape, value.planes, count)
        )

    def _check_acc(self, op: Op, bits: int, what: str) -> None:
        need = signed_bits(*self._bounds[op.name].acc_range)
        if need > bits:
            raise CompileError(
                op.name,
                f"accumulator range {self._bounds[op.name].acc_range} needs {need} "
                f"bits, the configuration's {what} has {bits}",
            )

    def _input(self) -> None:
        # The sample starts in host memory; its first reader loads it whole (command 0 of
        # a program that fits) unless that reader is band tiled and loads bands of it.
        c, h, w = self.model.input_shape
        planes = self.model.numerics.input_bits
        value = Value(None, h * w, c, planes, (self.t, c, h, w), host="input")
        self.values["input"] = value
        self.tensors["input"] = HostTensor("input", value.words, value.shape, planes)

    def _resident(self, name: str) -> Value:
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

    def _cut(self) -> None:
        """End the segment: the host must feed words this segment stores into the next one."""
        self.emit("end", Opcode.END)
        self._segment_starts.append(len(self._commands))
        self._pending.clear()

    # -------------------------------------------------------------- ops
    def _synapse(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        fields = self.conv_fields(op, src)
        out_c, oh, ow = fields["out_c"], fields["out_h"], fields["out_w"]
        image = op.tensors["weight"].ndim == 4
        shape = (self.t, out_c, oh, ow) if image else (self.t, src.positions, out_c)
        dst = self.new_value(op.name, oh * ow, out_c, 1, shape)
        self.emit(
            op.name, Opcode.CONV, self.conv_payload(op), src0=src.region.start, dst=dst.region.start, **fields
        )

    def _maxpool(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        if src.planes != 1:
            raise CompileError(
                op.name, f"max-pool runs on spikes only; its input has {src.planes} bit planes"
            )
        fields = self.pool_fields(op)
        c, oh, ow = fields["in_c"], fields["out_h"], fields["out_w"]
        dst = self.new_value(op.name, oh * ow, c, 1, (self.t, c, oh, ow))
        self.emit(op.name, Opcode.POOL, src0=src.region.start, dst=dst.region.start, **fields)

    def _tokens(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        t, c, h, w = src.shape
        self.values[op.name] = Value(src.region, h * w, c, src.planes, (t, h * w, c))

    def _attention(self, op: Op) -> None:
        q, k, v = (self.values[name] for name in op.inputs)
        if max(q.planes, k.planes, v.planes) != 1:
            raise CompileError(op.name, "attention inputs must be spikes (one bit plane)")
        heads = op.params["heads"]
        n, d = q.positions, q.channels
        self._check_acc(op, self.cfg.numerics.membrane_bits + 1, "attention current")
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

    def _add(self, op: Op) -> None:
        a, b = (self.values[name] for name in op.inputs)
        self._emit_add(op, a, b.region.start, b.planes)

    def _add_const(self, op: Op) -> None:
        a = self.values[op.inputs[0]]
        spikes = op.tensors["spikes"]
        if spikes.ndim == 4:  # image-like [T, C, H, W] -> the activation layout [T, H W, C]
            spikes = spikes.reshape(*spikes.shape[:2], -1).transpose(0, 2, 1)
        words = activation_words(spikes, planes=1, hw_timesteps=self.cfg.timesteps)
        const = self.alloc.alloc(words.size, f"{op.name}.const")
        payload = words_to_stream(words, self.cfg.timesteps)
        self.emit(op.name, Opcode.LOAD, payload, dst=const.start, count=words.size)
        self._emit_add(op, a, const.start, 1)
        self.alloc.release(const)  # read only by the ADD just emitted

    def _emit_add(self, op: Op, a: Value, b_start: int, b_planes: int) -> None:
        """``ADD`` of value ``a`` and the ``b_planes``-plane operand at ``b_start`` into op's output;
        with ``in_place_adds``, in place of an input that dies here (:meth:`_in_place`)."""
        planes = self._planes_of(op)
        a_start = a.region.start
        donor = self._in_place(op, planes) if self.in_place_adds else None
        if donor is None:
            dst = self.new_value(op.name, a.positions, a.channels, planes, a.shape)
        else:
            dst = Value(self.values[donor].region, a.positions, a.channels, planes, a.shape)
            self.values[op.name] = dst
            self.values[donor].region = None  # its words now hold the sum
        self.emit(
            op.name,
            Opcode.ADD,
            src0=a_start,
            src1=b_start,
            dst=dst.region.start,
            count=a.positions * a.channels,
            planes_in=a.planes,
            planes_in2=b_planes,
            planes_out=planes,
        )

    def _in_place(self, op: Op, planes: int) -> str | None:
        """The input of ``ADD`` ``op`` whose region the sum can overwrite, else ``None``.

        The ADD engine (hw/accel/elementwise.py, ``AddEngine``) visits the sum in address
        order, element by element and plane by plane (one plane a visit, or two with the
        two-bank memory's paired reads); it reads a visit's operand words before it writes
        the visit's sum words, and never reads a word of a visit it has passed. Values are
        element-major (word ``e * planes + j``), so when an operand has as many planes as the
        sum, each sum word lands on the operand word it was computed from, after that word
        was read. The sum may then take the operand's region if no later op reads the
        operand, nor an alias of it (``tokens``), whose readers the shared region's
        ``last_use`` counts. This is what holds the paper-sized CIFAR10-DVS model to ``2^20``
        words: its identity SEW blocks add over their 2-plane input (docs/numerics.md, 14).
        """
        index = self._op_index[op.name]
        for name in op.inputs:
            value = self.values[name]
            region = value.region
            if (
                region is not None
                and value.planes == planes
                and region.size == value.words
                and max(region.last_use, self.last_use[name]) <= index
            ):
                return name
        return None

    def _head(self, op: Op) -> None:
        src = self.values[op.inputs[0]]
        cfg = self.cfg
        self._check_acc(op, cfg.head_acc_bits, "head accumulator (head_acc_bits)")
        pooled_max = self.t * src.positions * ((1 << src.planes) - 1)
        if pooled_max.bit_length() > cfg.pool_bits:
            raise CompileError(
                op.name, f"sum-pool bound {pooled_max} exceeds the {cfg.pool_bits}-bit pool memory"
            )
        weight, bias = op.tensors["weight"], op.tensors["bias"]
        classes, d = weight.shape
        self.emit(
            op.name,
            Opcode.HEAD,
            head_payload(cfg, weight, bias),
            src0=src.region.start,
            timesteps=self.t,
            in_w=src.positions,
            in_c=d,
            planes_in=src.planes,
            classes=classes,
        )
        self._outputs.append(OutputSpec("logits", classes, (classes,)))

    # -------------------------------------------------------------- driver
    def build(self) -> Program:
        """Compile the model: walk its ops, emit their commands, and return the program.

        Raises
        ------
        CompileError
            When the model's numerics or time steps differ from the configuration's, or an op
            does not fit it.
        """
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
            self._op_index[op.name] = i
            for name in op.inputs:
                last_use[name] = i
        handlers = {
            "conv": self._synapse,
            "conv_maxpool": self._synapse,
            "linear": self._synapse,
            "maxpool": self._maxpool,
            "tokens": self._tokens,
            "attention": self._attention,
            "add": self._add,
            "add_const": self._add_const,
            "head": self._head,
        }
        for op in model.ops:
            if op.kind not in handlers:
                raise CompileError(op.name, _missing_command(op.kind))
        self._input()
        i = 0
        while i < len(model.ops):
            op = model.ops[i]
            stage = self._oversize_stage(i)
            if stage:
                banded_stage(self, i, *stage)
                for j in range(i, i + len(stage)):
                    self._retire(j, model.ops[j])
                i += len(stage)
                continue
            for name in op.inputs:
                self._resident(name)
            handlers[op.kind](op)
            if self.trace and op.kind != "head":
                self._store(op.name)
            self._retire(i, op)
            i += 1
        self.emit("end", Opcode.END)
        return Program(
            config=cfg,
            commands=tuple(self._commands),
            outputs=tuple(self._outputs),
            input_shape=model.input_shape,
            timesteps=model.timesteps,
            input_planes=model.numerics.input_bits,
            event=model.event,
            num_classes=model.num_classes,
            op_commands={k: tuple(v) for k, v in self._op_commands.items()},
            segment_starts=tuple(self._segment_starts),
            tensors=tuple(self.tensors.values()) if self.stages else (),
            stages=tuple(self.stages),
        )

    def _retire(self, i: int, op: Op) -> None:
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

    def _oversize_stage(self, i: int) -> list[Op]:
        """The ops of a conv stage at op ``i`` that must run band tiled, else ``[]``.

        A stage is an image conv and the max-pool that is its only reader, or a conv that
        pools its currents (``conv_maxpool``). It is band tiled when it cannot run resident:
        its input (loaded whole if it is in host memory), its output and the pool's output
        do not fit the free activation memory.
        """
        ops = self.model.ops
        conv = ops[i]
        if conv.kind not in ("conv", "conv_maxpool"):
            return []
        stage = [conv]
        if (
            conv.kind == "conv"
            and i + 1 < len(ops)
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


def _missing_command(kind: str) -> str:
    return f"op kind {kind!r} cannot be compiled exactly: no accelerator command implements it"


def compile_model(
    model: IntModel, config: AcceleratorConfig, *, trace: bool = False, in_place_adds: bool | None = None
) -> Program:
    """Compile ``model`` for ``config``.

    Parameters
    ----------
    model:
        The integer model (e.g. ``contract.manifest.load_export(path).model``).
    config:
        The accelerator configuration the program will run on.
    trace:
        Stream every op's output back after the op (debugging and per-layer comparison).
    in_place_adds:
        ``True``: an ``ADD`` writes its sum over an operand it reads for the last time when
        the two have as many bit planes (:meth:`ProgramBuilder._in_place`); ``False``: every
        sum gets a region of its own. ``None`` (default): ``False``, and ``True`` only if the
        program does not fit the activation memory otherwise. Sharing changes where later
        values go (best fit is not monotonic), so a program that fits keeps its placement.

    Raises
    ------
    CompileError
        When a value, weight block, group or width does not fit the configuration (an
        oversize conv stage is band tiled first; the error names it when not even a band
        of one output row fits).
    """
    if not isinstance(model, IntModel):
        raise TypeError(f"compile_model needs a contract.intmodel.IntModel, not {type(model).__name__}")
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"compile_model needs an AcceleratorConfig, not {type(config).__name__}")
    if in_place_adds is not None:
        return ProgramBuilder(model, config, trace, in_place_adds).build()
    try:
        return ProgramBuilder(model, config, trace).build()
    except CompileError as separate:
        try:
            return ProgramBuilder(model, config, trace, in_place_adds=True).build()
        except CompileError:
            raise separate from None
