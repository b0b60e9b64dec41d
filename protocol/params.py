"""Parameter objects of the processing elements (PEs), one per hardware configuration.

Each PE generator (:mod:`hw.lif_pe`, :mod:`hw.synapse_pe`, :mod:`hw.attention_pe`)
takes exactly one of these frozen dataclasses. The same object feeds the Verilog
generator (:mod:`hw.generate`), the cocotb parameter sweeps (``sim/``), the
analytic cycle model and, later, the accelerator and its host driver, so every
figure a tool needs about a PE (widths, latency, cycles, rate) is derived here
and nowhere else.

:data:`PE_CONFIGS` lists the named configurations used for sweeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from contract.checks import check_int
from contract.numerics import NumericsConfig, signed_range

__all__ = [
    "LIFArrayParams",
    "SynapseArrayParams",
    "AttentionParams",
    "PEParams",
    "PE_CONFIGS",
    "PE_KINDS",
    "params_from_dict",
    "unsigned_bits",
]


def unsigned_bits(value: int) -> int:
    """Width of an unsigned register that holds every integer in ``[0, value]`` (at least 1)."""
    return max(1, int(value).bit_length())


_P = TypeVar("_P", bound="_ParamsBase")


class _ParamsBase:
    """Shared dictionary round trip of the parameter dataclasses."""

    #: Short name of the PE family; the key of :data:`PE_CONFIGS` and of the JSON files.
    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary: ``{"kind": ..., <field>: <int>, ...}``."""
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_P], values: Mapping[str, Any]) -> _P:
        """Inverse of :meth:`to_dict`; unknown keys or a wrong ``kind`` are an error."""
        values = dict(values)
        kind = values.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"{cls.__name__} cannot be built from parameters of kind {kind!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameter(s) {', '.join(map(repr, unknown))}")
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class LIFArrayParams(_ParamsBase):
    """Parallel-time-step LIF PE array (:class:`hw.lif_pe.LIFArray`).

    Parameters
    ----------
    lanes:
        ``L``, neurons processed side by side per beat.
    timesteps:
        ``T``, time steps of one neuron computed in one pass.
    membrane_bits:
        Signed width ``M`` of currents and membrane potentials (``NumericsConfig.membrane_bits``).
    leak_shift:
        ``k`` with ``tau = 2**k`` (``NumericsConfig.leak_shift``).
    stage_steps:
        Time steps computed combinationally between two pipeline registers; the chain
        has ``ceil(T / stage_steps)`` register stages. 1 gives the shortest clock path.
    """

    kind: ClassVar[str] = "lif"

    lanes: int = 8
    timesteps: int = 4
    membrane_bits: int = 24
    leak_shift: int = 1
    stage_steps: int = 1

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(name, "lanes", self.lanes, minimum=1, maximum=1024)
        check_int(name, "timesteps", self.timesteps, minimum=1, maximum=256)
        check_int(name, "membrane_bits", self.membrane_bits, minimum=4, maximum=48)
        check_int(name, "leak_shift", self.leak_shift, minimum=0, maximum=min(8, self.membrane_bits - 1))
        check_int(name, "stage_steps", self.stage_steps, minimum=1, maximum=self.timesteps)

    @classmethod
    def from_numerics(
        cls, numerics: NumericsConfig, *, lanes: int, timesteps: int, stage_steps: int = 1
    ) -> LIFArrayParams:
        """The LIF array that implements ``numerics`` with ``lanes`` x ``timesteps``."""
        return cls(
            lanes=lanes,
            timesteps=timesteps,
            membrane_bits=numerics.membrane_bits,
            leak_shift=numerics.leak_shift,
            stage_steps=stage_steps,
        )

    @property
    def threshold_bits(self) -> int:
        """Signed threshold width ``M + 1``: one more than the membrane, see :meth:`clamp_threshold`."""
        return self.membrane_bits + 1

    def clamp_threshold(self, theta: np.ndarray | int) -> np.ndarray:
        """Map any integer threshold to the port range without changing a single spike.

        ``h`` always lies in the signed ``M``-bit range, so every ``theta > max`` never
        fires (same as ``max + 1``) and every ``theta <= min`` always fires (same as ``min``).
        """
        lo, hi = signed_range(self.membrane_bits)
        return np.clip(np.asarray(theta, dtype=np.int64), lo, hi + 1)

    @property
    def stages(self) -> int:
        """Register stages of the chain (= latency in cycles from input to output beat)."""
        return -(-self.timesteps // self.stage_steps)

    @property
    def latency(self) -> int:
        """Cycles from accepting a beat to presenting its output beat."""
        return self.stages

    @property
    def neuron_steps_per_cycle(self) -> int:
        """Sustained rate: ``L x T`` neuron updates per cycle (one beat per cycle)."""
        return self.lanes * self.timesteps

    def cycles(self, beats: int) -> int:
        """Cycles to stream ``beats`` beats through with no stalls (first accept to last output)."""
        beats = check_int(type(self).__name__, "cycles(beats)", beats, minimum=0, maximum=2**62)
        return beats + self.latency if beats else 0


@dataclass(frozen=True, kw_only=True)
class SynapseArrayParams(_ParamsBase):
    """Synapse PE array with tick batching (:class:`hw.synapse_pe.SynapseArray`).

    Parameters
    ----------
    lanes:
        ``L``, output neurons (weights) per beat.
    timesteps:
        ``T``, accumulators fed by each weight (one per time step).
    weight_bits:
        Signed weight width (``NumericsConfig.weight_bits``).
    input_bits:
        Widest unsigned input value (``NumericsConfig.input_bits``); a ``b``-bit input
        is streamed as ``b`` bit planes, so only the plane index widens with it.
    acc_bits:
        Signed accumulator width; bounds the exact fan-in, see :meth:`max_fan_in`.
    frac_bits:
        ``F``, fractional bits of currents and biases (``NumericsConfig.frac_bits``).
    membrane_bits:
        Signed current width ``M``; the output saturates here.
    bias_bits:
        Signed bias width; 0 (the default) means ``membrane_bits``.
    """

    kind: ClassVar[str] = "synapse"

    lanes: int = 8
    timesteps: int = 4
    weight_bits: int = 8
    input_bits: int = 8
    acc_bits: int = 24
    frac_bits: int = 4
    membrane_bits: int = 24
    bias_bits: int = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(name, "lanes", self.lanes, minimum=1, maximum=1024)
        check_int(name, "timesteps", self.timesteps, minimum=1, maximum=256)
        check_int(name, "weight_bits", self.weight_bits, minimum=2, maximum=16)
        check_int(name, "input_bits", self.input_bits, minimum=1, maximum=16)
        # The accumulator must hold one weight shifted by the largest plane-field value.
        check_int(
            name, "acc_bits", self.acc_bits, minimum=self.weight_bits + (1 << self.plane_bits), maximum=64
        )
        check_int(name, "frac_bits", self.frac_bits, minimum=0, maximum=16)
        check_int(name, "membrane_bits", self.membrane_bits, minimum=4, maximum=48)
        check_int(name, "bias_bits", self.bias_bits, minimum=0, maximum=64)

    @classmethod
    def from_numerics(
        cls, numerics: NumericsConfig, *, lanes: int, timesteps: int, acc_bits: int = 24, bias_bits: int = 0
    ) -> SynapseArrayParams:
        """The synapse array that implements ``numerics`` with ``lanes`` x ``timesteps``."""
        return cls(
            lanes=lanes,
            timesteps=timesteps,
            weight_bits=numerics.weight_bits,
            input_bits=numerics.input_bits,
            acc_bits=acc_bits,
            frac_bits=numerics.frac_bits,
            membrane_bits=numerics.membrane_bits,
            bias_bits=bias_bits,
        )

    @property
    def bias_width(self) -> int:
        """Effective signed bias width (``bias_bits`` or, when 0, ``membrane_bits``)."""
        return self.bias_bits or self.membrane_bits

    @property
    def plane_bits(self) -> int:
        """Width of the beat's ``plane`` field (bit-plane index); 0 for spike-only arrays."""
        return (self.input_bits - 1).bit_length()

    @property
    def weight_max(self) -> int:
        return signed_range(self.weight_bits)[1]

    def max_fan_in(self, input_max: int = 1) -> int:
        """Largest dot-product length whose sum provably fits the accumulator.

        With symmetric weights in ``[-wmax, wmax]`` and inputs in ``[0, input_max]``, a
        sum of ``n`` terms lies in ``[-n wmax input_max, n wmax input_max]``.
        """
        input_max = check_int(
            type(self).__name__,
            "max_fan_in(input_max)",
            input_max,
            minimum=1,
            maximum=(1 << self.input_bits) - 1,
        )
        return signed_range(self.acc_bits)[1] // (self.weight_max * input_max)

    @property
    def latency(self) -> int:
        """Cycles from accepting a ``last`` beat to presenting its output beat."""
        return 1

    @property
    def synaptic_ops_per_cycle(self) -> int:
        """Sustained rate for binary inputs: ``L x T`` spike x weight accumulations per cycle."""
        return self.lanes * self.timesteps

    def cycles(self, fan_in: int, *, planes: int = 1, outputs: int = 1) -> int:
        """Cycles for ``outputs`` dot products of ``fan_in`` inputs of ``planes`` bit planes each.

        One beat per cycle, a beat per (input, plane); the last output appears
        :attr:`latency` cycles after the last beat.
        """
        name = type(self).__name__
        fan_in = check_int(name, "cycles(fan_in)", fan_in, minimum=1, maximum=2**40)
        planes = check_int(name, "cycles(planes)", planes, minimum=1, maximum=self.input_bits)
        outputs = check_int(name, "cycles(outputs)", outputs, minimum=0, maximum=2**40)
        return outputs * fan_in * planes + self.latency if outputs else 0


@dataclass(frozen=True, kw_only=True)
class AttentionParams(_ParamsBase):
    """Spike-attention PE (:class:`hw.attention_pe.SpikeAttention`), one head.

    Parameters
    ----------
    head_dim:
        ``d``, spike features of one head (bits of a Q, K or V row).
    max_group:
        Largest token group ``G`` (rows of K/V per group); sizes the ``K^T V`` counters.
    frac_bits:
        ``F``, fractional bits of the output current.
    membrane_bits:
        Signed current width ``M``; the output saturates here.
    """

    kind: ClassVar[str] = "attention"

    head_dim: int = 16
    max_group: int = 64
    frac_bits: int = 4
    membrane_bits: int = 24

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(name, "head_dim", self.head_dim, minimum=1, maximum=256)
        check_int(name, "max_group", self.max_group, minimum=1, maximum=1 << 20)
        check_int(name, "frac_bits", self.frac_bits, minimum=0, maximum=16)
        check_int(name, "membrane_bits", self.membrane_bits, minimum=4, maximum=48)

    @classmethod
    def from_numerics(cls, numerics: NumericsConfig, *, head_dim: int, max_group: int) -> AttentionParams:
        """The attention PE that implements ``numerics`` for one head of ``head_dim``."""
        return cls(
            head_dim=head_dim,
            max_group=max_group,
            frac_bits=numerics.frac_bits,
            membrane_bits=numerics.membrane_bits,
        )

    @property
    def count_bits(self) -> int:
        """Width of one ``K^T V`` counter (holds ``0..max_group``)."""
        return unsigned_bits(self.max_group)

    @property
    def sum_bits(self) -> int:
        """Width of one output sum ``sum_c q_c (K^T V)_cj`` (holds ``0..d * max_group``)."""
        return unsigned_bits(self.head_dim * self.max_group)

    @property
    def latency(self) -> int:
        """Cycles from accepting a query row to presenting its output row."""
        return 1

    @property
    def ops_per_cycle(self) -> int:
        """``d x d`` AND-accumulates (K/V rows) or masked adds (Q rows) per cycle."""
        return self.head_dim * self.head_dim

    def cycles(self, group: int, *, queries: int | None = None, groups: int = 1) -> int:
        """Cycles for ``groups`` token groups of ``group`` K/V rows and ``queries`` Q rows each.

        One row per cycle: a group takes ``group + queries`` cycles (``queries``
        defaults to ``group``) and the next group's K/V rows follow at once; the
        last output row appears :attr:`latency` cycles after the last query row.
        """
        name = type(self).__name__
        group = check_int(name, "cycles(group)", group, minimum=1, maximum=self.max_group)
        queries = (
            group
            if queries is None
            else check_int(name, "cycles(queries)", queries, minimum=1, maximum=2**40)
        )
        groups = check_int(name, "cycles(groups)", groups, minimum=0, maximum=2**40)
        return groups * (group + queries) + self.latency if groups else 0


PEParams = LIFArrayParams | SynapseArrayParams | AttentionParams

#: PE family name -> parameter class.
PE_KINDS: dict[str, type[LIFArrayParams] | type[SynapseArrayParams] | type[AttentionParams]] = {
    cls.kind: cls for cls in (LIFArrayParams, SynapseArrayParams, AttentionParams)
}


def params_from_dict(values: Mapping[str, Any]) -> PEParams:
    """Rebuild any PE parameter object from its :meth:`to_dict` form (dispatch on ``kind``)."""
    kind = values.get("kind")
    if kind not in PE_KINDS:
        raise ValueError(f"PE kind must be one of {sorted(PE_KINDS)}, not {kind!r}")
    return PE_KINDS[kind].from_dict(values)


def _lif_configs() -> dict[str, LIFArrayParams]:
    configs = {
        f"lif_l{lanes}_t{steps}": LIFArrayParams(lanes=lanes, timesteps=steps)
        for lanes in (1, 8)
        for steps in (1, 4, 16)
    }
    # Narrow membrane with a slow leak: saturation and shift corners are easy to reach.
    configs["lif_l4_t4_m8_k2"] = LIFArrayParams(lanes=4, timesteps=4, membrane_bits=8, leak_shift=2)
    # Two time steps per register stage: half the latency, twice the logic depth.
    configs["lif_l8_t16_s2"] = LIFArrayParams(lanes=8, timesteps=16, stage_steps=2)
    return configs


def _synapse_configs() -> dict[str, SynapseArrayParams]:
    configs = {
        f"synapse_l{lanes}_t{steps}": SynapseArrayParams(lanes=lanes, timesteps=steps)
        for lanes in (1, 8)
        for steps in (1, 4, 16)
    }
    # Spike-only inputs and a narrow membrane that saturates often.
    configs["synapse_l4_t4_b1_m12"] = SynapseArrayParams(
        lanes=4, timesteps=4, input_bits=1, acc_bits=16, membrane_bits=12, bias_bits=12
    )
    return configs


def _attention_configs() -> dict[str, AttentionParams]:
    configs = {
        f"attention_d{dim}_g{group}": AttentionParams(head_dim=dim, max_group=group)
        for dim, group in ((4, 4), (8, 16), (16, 64))
    }
    # Narrow membrane: large groups saturate the current.
    configs["attention_d8_g64_m10"] = AttentionParams(head_dim=8, max_group=64, membrane_bits=10)
    return configs


#: Named configurations per PE family for sweeps, Verilog generation and synthesis.
PE_CONFIGS: dict[str, dict[str, PEParams]] = {
    "lif": dict(_lif_configs()),
    "synapse": dict(_synapse_configs()),
    "attention": dict(_attention_configs()),
}
