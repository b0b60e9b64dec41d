"""Functional emulator of the accelerator: runs a raw input stream, returns the output stream.

It parses the same 64-bit words the RTL receives (descriptors, payloads) and keeps an
activation memory of ``T``-bit words, computing every command with the integer ops of
:mod:`contract.numerics`. It is the executable statement of the stream protocol
(docs/accelerator.md): the compiler is tested against it without any RTL, and the RTL
is tested against it command by command. It is not cycle accurate.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from contract import numerics as nm
from contract.intmodel import group_tokens, ungroup_tokens
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.descriptors import DESC_WORDS, Descriptor, DescriptorError, Grouping, Opcode
from protocol.perf import command_cycles
from protocol.program import (
    activation_words,
    stream_to_words,
    stream_words_for,
    unpack_activation,
    words_to_stream,
)

__all__ = ["EmulatorError", "Emulator"]


class EmulatorError(RuntimeError):
    """The stream is not a valid program (the hardware would raise an error flag)."""


def _unpack_fields(words: np.ndarray, bits: int) -> np.ndarray:
    """``[..., n]`` 64-bit words -> ``[..., 64 n / bits]`` signed ``bits``-bit fields, LSB first
    (the inverse of :func:`protocol.program.pack_fields`)."""
    words = np.ascontiguousarray(words, dtype="<u8")
    flat = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little").astype(np.int64)
    values = (flat.reshape(*words.shape[:-1], -1, bits) << np.arange(bits)).sum(axis=-1)
    return values - ((values >> (bits - 1)) << bits)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Emulator:
    """Executes programs on a model of the accelerator's memories.

    Parameters
    ----------
    config:
        The accelerator configuration (memory sizes, ``T``, lanes, numerics).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self.cfg = config
        self.amem = np.zeros(config.amem_depth, dtype=np.uint64)
        self.executed: list[Descriptor] = []
        #: Cycles of each executed command by the cycle model, for the data it met
        #: (a zero-skipping CONV's count follows its input's non-zero words).
        self.cycles: list[int] = []

    # ------------------------------------------------------------------ stream access
    def run(self, stream: np.ndarray) -> np.ndarray:
        """Run one program; return the output stream words (``uint64``)."""
        words = iter(np.asarray(stream, dtype=np.uint64).tolist())
        out: list[int] = []
        index = 0
        self.executed, self.cycles = [], []
        while True:
            try:
                header = [next(words) for _ in range(DESC_WORDS)]
            except StopIteration:
                raise EmulatorError(f"stream ended inside or before descriptor {index} (no END)") from None
            try:
                desc = Descriptor.from_words(header)
            except ValueError as exc:
                raise EmulatorError(f"command {index}: bad descriptor: {exc}") from None
            if desc.index != index:
                raise EmulatorError(f"command {index}: descriptor carries index {desc.index}")
            try:
                desc.validate(self.cfg)
            except DescriptorError as exc:
                raise EmulatorError(str(exc)) from None
            self.executed.append(desc)
            skipping = self.cfg.zero_skip and desc.opcode == Opcode.CONV
            self.cycles.append(command_cycles(desc, self.cfg, self.amem != 0 if skipping else None)[0])
            if desc.opcode == Opcode.END:
                rest = list(words)
                if rest:
                    raise EmulatorError(f"{len(rest)} words after END")
                return np.asarray(out, dtype=np.uint64)
            getattr(self, f"_op_{desc.opcode.name.lower()}")(desc, words, out)
            index += 1

    @staticmethod
    def _take(words: Iterator[int], count: int, what: str) -> np.ndarray:
        taken = []
        for _ in range(count):
            try:
                taken.append(next(words))
            except StopIteration:
                raise EmulatorError(f"stream ended inside the payload of {what}") from None
        return np.asarray(taken, dtype=np.uint64)

    # ------------------------------------------------------------------ memory views
    def _read(self, start: int, positions: int, channels: int, planes: int, t: int) -> np.ndarray:
        words = self.amem[start : start + positions * channels * planes]
        return unpack_activation(words, positions=positions, channels=channels, planes=planes, timesteps=t)

    def _write(self, start: int, value: np.ndarray, planes: int) -> None:
        words = activation_words(value, planes=planes, hw_timesteps=self.cfg.timesteps)
        self.amem[start : start + words.size] = words

    # ------------------------------------------------------------------ commands
    def _op_load(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        payload = self._take(words, stream_words_for(d.count, self.cfg.timesteps), "LOAD")
        self.amem[d.dst : d.dst + d.count] = stream_to_words(payload, d.count, self.cfg.timesteps)

    def _op_store(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        out.extend(words_to_stream(self.amem[d.src0 : d.src0 + d.count], self.cfg.timesteps).tolist())

    def _op_conv(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        cfg = self.cfg
        lanes, wb, m = cfg.lanes, cfg.numerics.weight_bits, cfg.numerics.membrane_bits
        fan_in = d.in_c * d.kernel * d.kernel
        groups = -(-d.out_c // lanes)
        weights = np.zeros((groups * lanes, fan_in), dtype=np.int64)
        bias = np.zeros(groups * lanes, dtype=np.int64)
        theta = np.zeros(groups * lanes, dtype=np.int64)
        for g in range(groups):
            params = self._take(words, lanes, "CONV parameters")
            for lane, word in enumerate(params.tolist()):
                bias[g * lanes + lane] = _signed(word, 32)
                theta[g * lanes + lane] = _signed(word >> 32, 32)
            raw = self._take(words, fan_in * cfg.stream_words_per_weight_word, "CONV weights")
            weights[g * lanes : (g + 1) * lanes] = _unpack_fields(raw.reshape(fan_in, -1), wb).T
        t = d.timesteps
        x = self._read(d.src0, d.in_h * d.in_w, d.in_c, d.planes_in, t)  # [T, pos, C]
        image = x.reshape(t, d.in_h, d.in_w, d.in_c).transpose(0, 3, 1, 2)
        # Explicit top/left padding; bottom/right rows beyond the input read as zero.
        k, s = d.kernel, d.stride
        conv_h, conv_w = d.out_h, d.out_w
        if d.pool_kernel:
            # out_h, out_w are pooled; the conv output pads below as on the left (a band at the
            # bottom edge has pad_top 0 and the image's bottom padding).
            conv_h = (d.in_h + d.pad_top + d.pad_left - k) // s + 1
            conv_w = (d.in_w + 2 * d.pad_left - k) // s + 1
        need_h, need_w = (conv_h - 1) * s + k, (conv_w - 1) * s + k
        padded = np.zeros(
            (t, d.in_c, max(need_h, d.pad_top + d.in_h), max(need_w, d.pad_left + d.in_w)), dtype=np.int64
        )
        padded[:, :, d.pad_top : d.pad_top + d.in_h, d.pad_left : d.pad_left + d.in_w] = image
        padded = padded[:, :, :need_h, :need_w]
        w4 = weights[: d.out_c].reshape(d.out_c, k, k, d.in_c).transpose(0, 3, 1, 2)
        acc = nm.conv2d_accumulate(padded, w4, stride=s, padding=0)  # [T, O, oh, ow]
        current = nm.synaptic_current(
            acc, bias[: d.out_c, None, None], frac_bits=cfg.numerics.frac_bits, membrane_bits=m
        )
        if d.pool_kernel:
            current = self._pool_currents(d, current)
        spikes = nm.lif(
            current, theta[: d.out_c, None, None], leak_shift=cfg.numerics.leak_shift, membrane_bits=m
        )
        self._write(d.dst, spikes.reshape(t, d.out_c, -1).transpose(0, 2, 1), 1)

    def _pool_currents(self, d: Descriptor, current: np.ndarray) -> np.ndarray:
        """Max over each pooled position's window of conv currents ``[T, O, conv_h, conv_w]``;
        taps outside the conv output hold the smallest current (docs/numerics.md section 6)."""
        k, s, p, top = d.pool_kernel, d.pool_stride, d.pool_padding, d.pool_pad_top
        t, o, conv_h, conv_w = current.shape
        lo = -(1 << (self.cfg.numerics.membrane_bits - 1))
        need_h, need_w = (d.out_h - 1) * s + k, (d.out_w - 1) * s + k
        padded = np.full((t, o, max(need_h, top + conv_h), max(need_w, p + conv_w)), lo, dtype=np.int64)
        padded[:, :, top : top + conv_h, p : p + conv_w] = current
        return nm.current_maxpool2d(
            padded[:, :, :need_h, :need_w],
            kernel=k,
            stride=s,
            padding=0,
            membrane_bits=self.cfg.numerics.membrane_bits,
        )

    def _op_pool(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        t, k, s = d.timesteps, d.kernel, d.stride
        x = self._read(d.src0, d.in_h * d.in_w, d.in_c, 1, t).reshape(t, d.in_h, d.in_w, d.in_c)
        need_h, need_w = (d.out_h - 1) * s + k, (d.out_w - 1) * s + k
        padded = np.zeros(
            (t, max(need_h, d.pad_top + d.in_h), max(need_w, d.pad_left + d.in_w), d.in_c), dtype=np.int64
        )
        padded[:, d.pad_top : d.pad_top + d.in_h, d.pad_left : d.pad_left + d.in_w] = x
        pooled = nm.maxpool2d(padded[:, :need_h, :need_w].transpose(0, 3, 1, 2), kernel=k, stride=s)
        self._write(d.dst, pooled.reshape(t, d.in_c, -1).transpose(0, 2, 1), 1)

    def _op_add(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        t = self.cfg.timesteps  # planes are added for every step; unused steps are zero
        a = self._read(d.src0, d.count, 1, d.planes_in, t)
        b = self._read(d.src1, d.count, 1, d.planes_in2, t)
        total = nm.residual_add(a, b)
        if total.max(initial=0) >= 1 << d.planes_out:
            raise EmulatorError(f"ADD command {d.index}: sum exceeds {d.planes_out} planes")
        self._write(d.dst, total, d.planes_out)

    def _op_attention(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        cfg, t, n, dim = self.cfg, d.timesteps, d.in_w, d.in_c
        q, k, v = (self._read(src, n, dim, 1, t)[:, None] for src in (d.src0, d.src1, d.src2))
        grouping = Grouping(d.grouping).name.lower()
        qg, kg, vg = (group_tokens(x, grouping=grouping, heads=d.heads) for x in (q, k, v))
        current = nm.attention_current(
            qg, kg, vg, frac_bits=cfg.numerics.frac_bits, membrane_bits=cfg.numerics.membrane_bits
        )
        current = ungroup_tokens(current, grouping=grouping, shape=q.shape)
        spikes = nm.lif(
            current, d.threshold, leak_shift=cfg.numerics.leak_shift, membrane_bits=cfg.numerics.membrane_bits
        )
        self._write(d.dst, spikes[:, 0], 1)

    def _op_head(self, d: Descriptor, words: Iterator[int], out: list[int]) -> None:
        cfg = self.cfg
        wb = cfg.numerics.weight_bits
        per = STREAM_BITS // wb
        x = self._read(d.src0, d.in_w, d.in_c, d.planes_in, d.timesteps)
        pooled = nm.sum_pool(x, axes=(0, 1))
        for _ in range(d.classes):
            bias = int(self._take(words, 1, "HEAD bias")[0].astype(np.uint64).view(np.int64))
            raw = self._take(words, -(-d.in_c // per), "HEAD weights")
            weight = _unpack_fields(raw, wb)[: d.in_c]
            logit = int(
                nm.head_logits(
                    pooled[None], weight[None], np.array([bias]), frac_bits=cfg.numerics.frac_bits
                )[0, 0]
            )
            out.append(logit & 0xFFFF_FFFF_FFFF_FFFF)
