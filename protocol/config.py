"""One parameter object per accelerator configuration (:class:`AcceleratorConfig`).

The same frozen object feeds the Amaranth generator (:mod:`hw.accel.core`,
:mod:`hw.accel.top`), the program compiler (:mod:`protocol.descriptors`), the cycle
model (:mod:`protocol.perf`), the cocotb testbenches and the host driver; every
derived figure (PE parameters, memory sizes, peak rate, the configuration hash the
hardware reports) is computed here and nowhere else.

:data:`ACCEL_CONFIGS` holds the named presets: ``sim`` (small, fast to simulate;
the regression tests use it), ``pynq-z2`` (the xc7z020 board configuration with a
peak of ``L x T x K = 1024`` synaptic operations per cycle) and ``kv260`` (the Kria K26,
Zynq UltraScale+, with 2048). :data:`BOARD_PARTS` names the FPGA part of each board preset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contract.checks import check_int
from contract.numerics import NumericsConfig
from protocol.params import AttentionParams, LIFArrayParams, SynapseArrayParams

__all__ = ["STREAM_BITS", "AcceleratorConfig", "ACCEL_CONFIGS", "BOARD_PARTS", "ConfigError", "get_config"]

#: Width of the AXI4-Stream data buses (``s_axis_tdata``, ``m_axis_tdata``) in bits.
STREAM_BITS = 64


class ConfigError(ValueError):
    """An accelerator configuration is inconsistent; the message names the field and value."""


def _check_int(field_: str, value: object, *, minimum: int, maximum: int) -> int:
    # Fields end up in the configuration hash (JSON), so numpy integers are refused.
    return check_int(
        "AcceleratorConfig", field_, value, minimum=minimum, maximum=maximum, error=ConfigError, numpy=False
    )


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    """Parameters of one accelerator build.

    Parameters
    ----------
    name:
        Preset name (reported in tables and file names).
    timesteps:
        ``T``: time steps processed in parallel; one activation word holds the ``T``
        time steps of one feature (one bit plane). A power of two dividing 64 so
        that stream words pack whole activation words. Models with fewer steps run
        with the upper steps masked.
    lanes:
        ``L``: synapse lanes (output channels per dot product); the synapse array does
        ``L x T`` synaptic operations per cycle. ``L * weight_bits`` must be a multiple
        of 64 (one weight-memory word is a whole number of stream words).
    lif_lanes:
        LIF array lanes; a synapse result is fed to it in ``L / lif_lanes`` chunks, and
        the attention LIF pass uses the same array. Must divide ``lanes``.
    head_dim:
        ``d`` of the spike-attention PE (largest head width a model may use).
    max_group:
        Largest attention token group (``T N`` for joint attention).
    max_tokens:
        Largest token count ``N`` of an attention layer (sizes the current memory).
    amem_depth:
        Activation memory depth in words of ``T`` bits.
    wmem_depth:
        Weight memory depth in words of ``L x weight_bits`` bits: the largest fan-in
        ``C k^2`` of a conv/linear layer (one output-channel group is held at a time).
    max_features:
        Largest embedding width ``D`` the head's sum-pool memory holds.
    numerics:
        The integer semantics (:class:`contract.numerics.NumericsConfig`); a model must
        have been exported with the same widths.
    acc_bits:
        Signed synapse accumulator width (bounds the exact fan-in).
    head_acc_bits:
        Signed width of the head's logit accumulator before the shift and bias add.
    profile_depth:
        Commands whose cycle counts are kept in the profile registers.
    clock_mhz:
        The accelerator's clock in MHz, set here only: the fabric clock of ``make bitstream``,
        the simulated backend's clock, and the clock of ``host.run``'s frames per second and
        driver timeouts (``--clock-mhz`` / ``CLOCK_MHZ`` override it for one run). Not part of
        :attr:`config_hash`: the generated hardware does not depend on it.
    serial_synapse:
        Use :class:`hw.accel.serial_synapse.SerialSynapseArray` (spike-enabled
        accumulators, results leave in ``lif_lanes``-wide chunks through one shared
        bias/saturation stage) instead of the synapse PE :class:`hw.synapse_pe.SynapseArray`
        (all ``L x T`` outputs in parallel): the same arithmetic, far fewer LUTs at large
        ``L x T``.
    words_per_beat:
        ``K``: activation words a synapse beat consumes (1 or 2; 2 needs ``serial_synapse``).
        The array then does ``L x T x K`` synaptic operations per cycle with ``L x T``
        accumulators; the activation and weight memories are split into ``K`` interleaved
        banks so the ``K`` consecutive activation words of a beat and the weights of their
        (up to ``K``) channels are read in one cycle.
    zero_skip:
        The conv engine reads only the non-zero activation words of each kernel tap
        (:mod:`protocol.zero_skip`): the core keeps an occupancy bit per activation word,
        a beat takes one non-zero word from each activation bank, and the weight memory
        is two copies, one per bank's word. Needs ``words_per_beat = 2``. A dot product
        then takes cycles in proportion to its non-zero words, not its fan-in.
    amem_words_per_row:
        Activation words stored per physical row of each activation bank (1, 2 or 4;
        :class:`hw.accel.packed.PackedMemory`): a write sets one word through the RAM's byte
        enables, a read selects the word from its row. Invisible to programs and timing; it
        lets a URAM288 row (72 bits) hold four 16-bit words instead of one. Must divide the
        bank depth ``amem_depth / words_per_beat``.
    """

    name: str
    timesteps: int = 4
    lanes: int = 8
    lif_lanes: int = 8
    head_dim: int = 16
    max_group: int = 256
    max_tokens: int = 64
    amem_depth: int = 32768
    wmem_depth: int = 512
    max_features: int = 256
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    acc_bits: int = 24
    head_acc_bits: int = 40
    profile_depth: int = 64
    clock_mhz: float = 100.0
    serial_synapse: bool = False
    words_per_beat: int = 1
    zero_skip: bool = False
    amem_words_per_row: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"AcceleratorConfig.name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.numerics, NumericsConfig):
            raise TypeError(f"AcceleratorConfig.numerics must be a NumericsConfig, not {self.numerics!r}")
        t = _check_int("timesteps", self.timesteps, minimum=1, maximum=64)
        if not _power_of_two(t):
            raise ConfigError(
                f"AcceleratorConfig.timesteps must be a power of two dividing {STREAM_BITS}, not {t}"
            )
        if STREAM_BITS % self.numerics.weight_bits:
            raise ConfigError(
                f"AcceleratorConfig.numerics.weight_bits must divide {STREAM_BITS} (head weights "
                f"are packed whole into stream words), not {self.numerics.weight_bits}"
            )
        lanes = _check_int("lanes", self.lanes, minimum=1, maximum=1024)
        words = _check_int("words_per_beat", self.words_per_beat, minimum=1, maximum=2)
        if words > 1 and not self.serial_synapse:
            raise ConfigError(
                f"AcceleratorConfig.words_per_beat = {words} needs serial_synapse = True (the "
                "synapse PE takes one word per beat)"
            )
        if not isinstance(self.zero_skip, bool):
            raise ConfigError(f"AcceleratorConfig.zero_skip must be a bool, not {self.zero_skip!r}")
        if self.zero_skip and words != 2:
            raise ConfigError(
                "AcceleratorConfig.zero_skip needs words_per_beat = 2 (a beat takes one non-zero "
                f"word from each of the two activation banks), not {words}"
            )
        if (lanes * self.numerics.weight_bits) % STREAM_BITS:
            raise ConfigError(
                f"AcceleratorConfig.lanes * numerics.weight_bits must be a multiple of "
                f"{STREAM_BITS}, not {lanes} * {self.numerics.weight_bits}"
            )
        lif = _check_int("lif_lanes", self.lif_lanes, minimum=1, maximum=lanes)
        if lanes % lif:
            raise ConfigError(f"AcceleratorConfig.lif_lanes must divide lanes ({lanes}), not {lif}")
        _check_int("head_dim", self.head_dim, minimum=1, maximum=64)
        if self.head_dim % lif:
            raise ConfigError(
                f"AcceleratorConfig.lif_lanes must divide head_dim ({self.head_dim}): the "
                f"attention LIF pass sends whole chunks of a current row, not {lif}"
            )
        _check_int("max_tokens", self.max_tokens, minimum=1, maximum=1 << 16)
        _check_int("max_group", self.max_group, minimum=1, maximum=1 << 20)
        _check_int("amem_depth", self.amem_depth, minimum=16, maximum=1 << 24)
        if self.amem_depth % words:
            raise ConfigError(
                f"AcceleratorConfig.amem_depth must be a multiple of words_per_beat ({words}): the "
                f"activation memory is {words} equal banks, not {self.amem_depth}"
            )
        packed = _check_int("amem_words_per_row", self.amem_words_per_row, minimum=1, maximum=4)
        if packed == 3 or self.amem_depth % (words * packed):
            raise ConfigError(
                f"AcceleratorConfig.amem_words_per_row must be 1, 2 or 4 and divide the activation "
                f"bank depth ({self.amem_depth} / {words}), not {packed}"
            )
        _check_int("wmem_depth", self.wmem_depth, minimum=words, maximum=1 << 20)
        _check_int("max_features", self.max_features, minimum=1, maximum=1 << 16)
        if self.numerics.membrane_bits > 31:
            raise ConfigError(
                "AcceleratorConfig.numerics.membrane_bits must be <= 31 (biases and "
                f"thresholds travel as 32-bit fields), not {self.numerics.membrane_bits}"
            )
        _check_int(
            "acc_bits",
            self.acc_bits,
            minimum=self.numerics.weight_bits + self.numerics.input_bits,
            maximum=48,
        )
        _check_int("head_acc_bits", self.head_acc_bits, minimum=16, maximum=64 - self.numerics.frac_bits)
        _check_int("profile_depth", self.profile_depth, minimum=1, maximum=1024)
        if (
            not isinstance(self.clock_mhz, (int, float))
            or isinstance(self.clock_mhz, bool)
            or not self.clock_mhz > 0
        ):
            raise ConfigError(
                f"AcceleratorConfig.clock_mhz must be a positive number, not {self.clock_mhz!r}"
            )

    # ------------------------------------------------------------------ derived figures
    @property
    def peak_synaptic_ops(self) -> int:
        """Synaptic operations (spike x weight accumulates) per cycle at full rate: ``L x T x K``."""
        return self.lanes * self.timesteps * self.words_per_beat

    @property
    def words_per_stream_word(self) -> int:
        """Activation words (``T`` bits) packed in one 64-bit stream word."""
        return STREAM_BITS // self.timesteps

    @property
    def weight_word_bits(self) -> int:
        """Bits of one weight-memory word: ``L`` signed weights."""
        return self.lanes * self.numerics.weight_bits

    def rows_per_tap(self, in_c: int, planes: int) -> int:
        """Weight-memory rows (beats) per kernel tap: ``ceil(C P / K)`` input words, ``K`` a beat."""
        return -(-in_c * planes // self.words_per_beat)

    @property
    def stream_words_per_weight_word(self) -> int:
        return self.weight_word_bits // STREAM_BITS

    @property
    def chunks(self) -> int:
        """LIF beats per synapse result (``L / lif_lanes``)."""
        return self.lanes // self.lif_lanes

    @property
    def spike_words_per_cycle(self) -> int:
        """Spike words the LIF unit writes per cycle: two consecutive lanes' (one per activation
        bank) with the two-bank memory and at least two LIF lanes, else one."""
        return 2 if self.words_per_beat == 2 and self.lif_lanes >= 2 else 1

    @property
    def transfer_words_per_cycle(self) -> int:
        """Activation words LOAD writes and STORE reads per cycle: two consecutive ones (one per
        bank) with the two-bank memory, when a stream word holds at least two; else one."""
        return 2 if self.words_per_beat == 2 and self.words_per_stream_word >= 2 else 1

    @property
    def writer_cycles_per_job(self) -> int:
        """Cycles the LIF unit's writer spends on one job of ``lif_lanes`` spike words."""
        return -(-self.lif_lanes // self.spike_words_per_cycle)

    @property
    def spike_fifo_depth(self) -> int:
        """Beats the LIF unit's spike FIFO holds: two synapse results' jobs, so the writer never
        waits for the next result while the current one is written."""
        return 2 * self.chunks + 1

    @property
    def cmem_depth(self) -> int:
        """Attention current memory depth: one row of ``d`` currents per (token, step)."""
        return self.max_tokens * self.timesteps

    @property
    def pool_bits(self) -> int:
        """Width of one head sum-pool entry: holds ``T N_max (2**input_bits - 1)``."""
        return (self.timesteps * self.max_tokens * self.numerics.input_max).bit_length()

    def synapse_params(self) -> SynapseArrayParams:
        return SynapseArrayParams.from_numerics(
            self.numerics, lanes=self.lanes, timesteps=self.timesteps, acc_bits=self.acc_bits
        )

    def lif_params(self) -> LIFArrayParams:
        return LIFArrayParams.from_numerics(self.numerics, lanes=self.lif_lanes, timesteps=self.timesteps)

    def attention_params(self) -> AttentionParams:
        return AttentionParams.from_numerics(self.numerics, head_dim=self.head_dim, max_group=self.max_group)

    def memory_bits(self) -> dict[str, int]:
        """On-chip memory per buffer, in bits."""
        m = self.numerics.membrane_bits
        return {
            "activations": self.amem_depth * self.timesteps,
            "weights": self.wmem_depth * self.weight_word_bits,
            "attention_currents": self.cmem_depth * self.head_dim * m,
            "head_pool": self.max_features * self.pool_bits,
            "profile": self.profile_depth * 32,
        }

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["numerics"] = self.numerics.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AcceleratorConfig:
        values = dict(values)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"AcceleratorConfig has no field(s) {', '.join(map(repr, unknown))}")
        if isinstance(values.get("numerics"), Mapping):
            values["numerics"] = NumericsConfig(**values["numerics"])
        return cls(**values)

    @property
    def config_hash(self) -> int:
        """32-bit hash of every hardware-relevant field; the core reports it in a register
        and a compiled program records it, so a program never runs on the wrong bitstream."""
        values = self.to_dict()
        for informational in ("name", "clock_mhz"):
            values.pop(informational)
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:4], "little")


ACCEL_CONFIGS: dict[str, AcceleratorConfig] = {
    # Small and quick under Verilator and Amaranth's simulator, with the board's datapath
    # (serial synapse array, two words per beat): runs hw-tiny and the small DVS-shaped test
    # models (T <= 4, D <= 64, N <= 64) at 16 lanes x 4 steps x 2 words = 128 synaptic ops
    # per cycle.
    "sim": AcceleratorConfig(name="sim", lanes=16, lif_lanes=8, serial_synapse=True, words_per_beat=2),
    # PYNQ-Z2 (xc7z020): 32 lanes x 16 steps x 2 words = 1024 synaptic ops per cycle with
    # 512 spike-enabled accumulators; one LIF lane (16 neurons), as fast as the one-word-per-
    # cycle spike writer it feeds. hw-gesture's transformer (N = 64, D = 256, T = 16) fits
    # the activation memory; the weight memory holds a 3x3 conv over 256 channels (fan-in
    # 2304, Spikformer-2-256's positional-encoding conv).
    "pynq-z2": AcceleratorConfig(
        name="pynq-z2",
        timesteps=16,
        lanes=32,
        lif_lanes=1,
        head_dim=16,
        max_group=1024,
        max_tokens=64,
        amem_depth=131072,
        wmem_depth=2304,
        max_features=256,
        acc_bits=22,
        head_acc_bits=40,
        profile_depth=64,
        serial_synapse=True,
        words_per_beat=2,
    ),
    # KV260 (Kria K26, xck26: 117,120 LUT, 144 BRAM36, 64 URAM288, UltraScale+ -2LV): 64 lanes x 16
    # steps x 2 words = 2048 synaptic ops per cycle (twice pynq-z2; 128 lanes would pass the 80 % LUT
    # budget). The activation memory is the paper-sized Gesture model's (hw-spikeformer-gesture: its
    # first SEW block holds 2^20 words at 64x64x64) in the 64 URAM288: two banks of 2^19 x 16 bits,
    # packed four words to a 72-bit row (one word a row would need 256 URAM288). The weights hold its
    # 5x5 conv over 256 channels (6400 rows) in BRAM. Not the paper's attention: head_dim 64 and 256
    # tokens need a current memory of 256 x 16 rows x 64 x 24 bits = 6.3 Mbit, which with the 16.8
    # Mbit of activations and 3.3 Mbit of weights passes the K26's 24.2 Mbit of URAM and BRAM, and a
    # d = 64 attention PE alone is 204,363 LUT in Yosys (174 %; d = 16: 9,707), so head_dim and
    # max_tokens stay those of hw-gesture. 200 MHz: the -2 UltraScale+ fabric, about twice the -1
    # Zynq-7000's rate for this datapath; no timing closure yet.
    "kv260": AcceleratorConfig(
        name="kv260",
        timesteps=16,
        lanes=64,
        lif_lanes=1,
        head_dim=16,
        max_group=1024,
        max_tokens=64,
        amem_depth=1 << 20,
        wmem_depth=6400,
        max_features=256,
        acc_bits=22,
        head_acc_bits=40,
        profile_depth=64,
        clock_mhz=200.0,
        serial_synapse=True,
        words_per_beat=2,
        amem_words_per_row=4,
    ),
}

#: The FPGA part each board preset is built for: ``make bitstream``'s default part and the device
#: :mod:`sim.accel.synth` checks the fit against. Kept beside the configurations, not in them: the
#: part does not change the generated hardware (nor :attr:`AcceleratorConfig.config_hash`).
# `sim` with zero-word skipping in CONV (protocol.zero_skip): a dot product's cycles
# follow its non-zero activation words.
ACCEL_CONFIGS["sim-zero-skip"] = dataclasses.replace(
    ACCEL_CONFIGS["sim"], name="sim-zero-skip", zero_skip=True
)

BOARD_PARTS: dict[str, str] = {"pynq-z2": "xc7z020clg400-1", "kv260": "xck26-sfvc784-2LV-c"}


def get_config(name: str | AcceleratorConfig) -> AcceleratorConfig:
    """A preset by name (or the object itself)."""
    if isinstance(name, AcceleratorConfig):
        return name
    if name not in ACCEL_CONFIGS:
        raise ConfigError(f"unknown accelerator configuration {name!r}; known: {', '.join(ACCEL_CONFIGS)}")
    return ACCEL_CONFIGS[name]
