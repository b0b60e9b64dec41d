"""Mutation check: does some test fail when the code is wrong in a small, plausible way?

``python scripts/mutate.py [--only NAME ...] [--timeout S] [--keep] [--list]`` (``make mutate``)
copies the tree (``git ls-files -co --exclude-standard``: tracked and untracked, non-ignored
files) to a temporary directory once, runs the union of the tests below on the unmutated
copy (it must pass, or a "killed" mutation would mean nothing), then applies each mutation
of :data:`MUTATIONS` alone, runs the tests meant to catch it and reverts it. The working tree
is never written. It prints one row per mutation (killed: a test failed; survived: every
test passed, a property no selected test checks) and the kill rate.

Each mutation names its file and an exact text that must occur there exactly once, so an
edit of the code makes the list fail loudly instead of silently testing nothing. Only fast
tests run (Amaranth's simulator, the integer model and its references, the compiler, the
emulator, the host fakes); the Verilator regressions are left to ``make test``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "protocol", "hw", "sim", "host", "golden")
PYTEST_FLAGS = ("-x", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "not slow")


@dataclass(frozen=True)
class Mutation:
    """Replace ``original`` (exactly one occurrence in ``file``) by ``replacement``; ``tests``
    are the pytest arguments (files or node ids) that should then fail."""

    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


# The tests meant to catch each layer's bugs.
LIF = ("tests/test_hw_lif.py",)
SYNAPSE = ("tests/test_hw_synapse.py",)
ATTENTION = ("tests/test_hw_attention.py",)
SERIAL = ("tests/test_accel_serial_synapse.py",)
CORE = ("tests/test_accel_core.py",)
# Integer model: only the references that do not call contract/ (docs/verification.md): the
# loop references and the float64 fake-quant model of golden/.
REFERENCE = (
    "tests/test_intmodel_reference.py",
    "tests/test_numerics.py",
    "tests/test_quantize.py::test_fake_quant_equals_integer_on_every_grouping",
    "tests/test_quantize.py::test_event_counts_are_clipped_alike",
    "tests/test_quantize.py::test_int_lif_equals_numerics_lif",
)
CURRENT_POOL = ("tests/test_accel_current_pool.py",)
ZERO_SKIP = ("tests/test_accel_zero_skip.py",)
COMPILER = ("tests/test_accel_program.py", "tests/test_accel_bands.py", "tests/test_accel_core.py")
DRIVER = ("tests/test_host_driver.py", "tests/test_accel_program.py", "tests/test_accel_core.py")


def _m(name: str, file: str, original: str, replacement: str, tests: tuple[str, ...]) -> Mutation:
    return Mutation(name, file, original, replacement, tests)


MUTATIONS: tuple[Mutation, ...] = (
    # ------------------------------------------------------------------ RTL processing elements
    _m("lif-leak-shift+1", "hw/lif_pe.py", "return diff >> shift", "return diff >> (shift + 1)", LIF),
    _m("lif-fire-strict", "hw/lif_pe.py", "spike.eq(h >= theta),", "spike.eq(h > theta),", LIF),
    _m(
        "lif-reset-to-1",
        "hw/lif_pe.py",
        "return spike, Mux(spike, 0, h[:bits].as_signed())",
        "return spike, Mux(spike, 1, h[:bits].as_signed())",
        LIF,
    ),
    _m(
        "lif-k0-fire-strict",
        "hw/lif_pe.py",
        "spike.eq((x >= saturate(theta, bits)) & ~never)",
        "spike.eq((x > saturate(theta, bits)) & ~never)",
        LIF,
    ),
    _m(
        "synapse-accumulate-sign",
        "hw/synapse_pe.py",
        "total.eq(acc + Mux(beat.spikes[t], weight, 0))",
        "total.eq(acc - Mux(beat.spikes[t], weight, 0))",
        SYNAPSE,
    ),
    _m(
        "synapse-overflow-flag",
        "hw/synapse_pe.py",
        "overflows.append(total[-1] ^ total[-2])",
        "overflows.append(total[-1] & total[-2])",
        SYNAPSE,
    ),
    _m(
        "synapse-frac-shift+1",
        "hw/synapse_pe.py",
        "result.shift_left(p.frac_bits) + bias",
        "result.shift_left(p.frac_bits + 1) + bias",
        SYNAPSE,
    ),
    _m(
        "synapse-plane-weight",
        "hw/synapse_pe.py",
        "weight.eq(beat.weight[lane].shift_left(plane))",
        "weight.eq(beat.weight[lane].shift_left(plane + 1))",
        SYNAPSE,
    ),
    _m(
        "attention-and-to-or",
        "hw/attention_pe.py",
        "take_kv & self.kv.payload.k[c] & self.kv.payload.v[j]",
        "take_kv & (self.kv.payload.k[c] | self.kv.payload.v[j])",
        ATTENTION,
    ),
    _m(
        "attention-saturation-width",
        "hw/attention_pe.py",
        "saturate_unsigned(total.shift_left(p.frac_bits), p.membrane_bits)",
        "saturate_unsigned(total.shift_left(p.frac_bits), p.membrane_bits - 1)",
        ATTENTION,
    ),
    _m(
        "attention-overflow-flag-early",
        "hw/attention_pe.py",
        "with m.If(rows == p.max_group):",
        "with m.If(rows == p.max_group - 1):",
        ATTENTION,
    ),
    _m(
        "serial-pair-sum-sign",
        "hw/accel/serial_synapse.py",
        "both.eq(negated[0] - shifted[1])",
        "both.eq(negated[0] + shifted[1])",
        SERIAL,
    ),
    # ------------------------------------------------------------------ RTL accelerator engines
    _m(
        "conv-row-address-stride",
        "hw/accel/conv.py",
        '{"oy": ps_row, "ox": ps_cp, "wy": s_row, "wx": s_cp, "dy": row, "dx": cp}',
        '{"oy": ps_row, "ox": ps_cp, "wy": s_row, "wx": s_cp, "dy": cp, "dx": cp}',
        CORE,
    ),
    _m(
        "conv-column-address-stride",
        "hw/accel/conv.py",
        '{"oy": ps_row, "ox": ps_cp, "wy": s_row, "wx": s_cp, "dy": row, "dx": cp}',
        '{"oy": ps_row, "ox": cp, "wy": s_row, "wx": s_cp, "dy": row, "dx": cp}',
        CORE,
    ),
    _m("conv-right-padding", "hw/accel/conv.py", "(ix >= d.in_w))", "(ix > d.in_w))", CORE),
    _m(
        "conv-band-pool-top-padding",
        "hw/accel/conv.py",
        "Mux(pooling, d.pool_pad_top[:4], 0)",
        "Mux(pooling, d.pool_padding[:4], 0)",
        CURRENT_POOL,
    ),
    _m(
        "conv-pool-max-keeps-old-window",
        "hw/accel/conv.py",
        "Mux(tag_first | (current > best), current, best)",
        "Mux(current > best, current, best)",
        CURRENT_POOL,
    ),
    _m(
        "zero-skip-both-picks-even",
        "hw/accel/tap_scanner.py",
        "_lowest(m, pending & ~_EVEN,",
        "_lowest(m, pending & _EVEN,",
        ZERO_SKIP,
    ),
    _m(
        "zero-skip-occupancy-always-set",
        "hw/accel/core.py",
        "bits.append(Mux(word.any(), bit, 0))",
        "bits.append(Mux(1, bit, 0))",
        ZERO_SKIP,
    ),
    _m(
        "lif-writer-span",
        "hw/accel/lifunit.py",
        "self.wr.en.eq(writing & (lane < tag_lanes)),",
        "self.wr.en.eq(writing & (lane <= tag_lanes)),",
        CORE,
    ),
    _m(
        "lif-writer-lane-restart",
        "hw/accel/lifunit.py",
        "with m.If(finish):\n            m.d.sync += visit.eq(0)",
        "with m.If(finish):\n            m.d.sync += visit.eq(1)",
        CORE,
    ),
    _m(
        "pool-or-to-and",
        "hw/accel/elementwise.py",
        'Mux(real, word, 0) | Mux(stage.meta["first"], 0, acc_i)',
        'Mux(real, word, 0) & Mux(stage.meta["first"], 0, acc_i)',
        CORE,
    ),
    _m(
        "pool-window-restart",
        "hw/accel/elementwise.py",
        '"first": ~loop.idx["dy"].any() & ~loop.idx["dx"].any(),',
        '"first": ~loop.idx["dx"].any(),',
        CORE,
    ),
    _m(
        "add-carry-propagate",
        "hw/accel/elementwise.py",
        "carry_in = (a_i & b_i) | (carry_in & (a_i ^ b_i))",
        "carry_in = a_i & b_i",
        CORE,
    ),
    _m(
        "add-sum-drops-carry",
        "hw/accel/elementwise.py",
        "sums.append(a_i ^ b_i ^ carry_in)",
        "sums.append(a_i ^ b_i)",
        CORE,
    ),
    _m(
        "head-sum-plane-weight",
        "hw/accel/head.py",
        'weighted = ones(self.rd.data) << stage.meta["plane"]',
        "weighted = ones(self.rd.data)",
        CORE,
    ),
    _m(
        "head-frac-shift+1",
        "hw/accel/head.py",
        "Cat(Const(0, cfg.numerics.frac_bits), acc)",
        "Cat(Const(0, cfg.numerics.frac_bits + 1), acc)",
        CORE,
    ),
    _m(
        "elementwise-second-word-copies-first",
        "hw/accel/elementwise.py",
        "self.wr.next_data.eq(words[1])",
        "self.wr.next_data.eq(words[0])",
        CORE,
    ),
    _m(
        "pool-second-channel-value",
        "hw/accel/elementwise.py",
        "for word, acc_i in zip(words, acc, strict=True)",
        "for word, acc_i in zip(words[:1] * len(acc), acc, strict=True)",
        CORE,
    ),
    _m(
        "conv-prefetch-reads-loading-half",
        "hw/accel/conv.py",
        "read_upper.eq(load_upper)",
        "read_upper.eq(~load_upper)",
        CORE,
    ),
    _m(
        "banked-second-write-dropped",
        "hw/accel/banked.py",
        "wr.en.eq(self.wr_en & (~odd | self.wr_next_en)),",
        "wr.en.eq(self.wr_en & ~odd),",
        CORE,
    ),
    _m(
        "store-odd-count-second-word",
        "hw/accel/transfer.py",
        'meta["second"] = ~loop.final | ~d.count[0]',
        'meta["second"] = ~loop.final | d.count[0]',
        CORE,
    ),
    _m(
        "attention-pair-second-key",
        "hw/accel/attention.py",
        "m.d.sync += kbits[f].eq(self.rd.next)",
        "m.d.sync += kbits[f].eq(self.rd.data)",
        CORE,
    ),
    _m(
        "attention-engine-groups",
        "hw/accel/attention.py",
        "groups = Mux(joint, 1, Mux(temporal, d.in_w, d.timesteps))",
        "groups = Mux(joint, 1, Mux(temporal, d.timesteps, d.in_w))",
        CORE,
    ),
    _m(
        "attention-engine-last-row",
        "hw/accel/attention.py",
        "last_row = Mux(spatial, group, d.timesteps - 1)",
        "last_row = Mux(spatial, group, d.timesteps - 2)",
        CORE,
    ),
    # ------------------------------------------------------------------ integer model
    _m(
        "numerics-leak-ceil",
        "contract/numerics.py",
        "    h = v + ((x - v) >> leak_shift)\n",
        "    h = v - ((v - x) >> leak_shift)\n",
        REFERENCE,
    ),
    _m(
        "numerics-fire-strict",
        "contract/numerics.py",
        "    spike = h >= theta\n",
        "    spike = h > theta\n",
        REFERENCE,
    ),
    _m(
        "numerics-reset-to-1",
        "contract/numerics.py",
        "np.where(spike, 0, h)",
        "np.where(spike, 1, h)",
        REFERENCE,
    ),
    _m(
        "numerics-saturate-hi+1",
        "contract/numerics.py",
        'return np.clip(_as_int(x, "x"), lo, hi)',
        'return np.clip(_as_int(x, "x"), lo, hi + 1)',
        REFERENCE,
    ),
    _m(
        "numerics-bias-sign",
        "contract/numerics.py",
        '(_as_int(acc, "acc") << frac_bits) + _as_int(bias, "bias")',
        '(_as_int(acc, "acc") << frac_bits) - _as_int(bias, "bias")',
        REFERENCE,
    ),
    _m(
        "numerics-conv-pads-ones",
        "contract/numerics.py",
        "padded = np.pad(s, ((0, 0), (0, 0), (padding, padding), (padding, padding)))",
        "padded = np.pad(s, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=1)",
        REFERENCE,
    ),
    _m(
        "numerics-maxpool-column-stride",
        "contract/numerics.py",
        "windows[..., ::stride, ::stride, :, :]",
        "windows[..., ::stride, ::1, :, :]",
        REFERENCE,
    ),
    _m(
        "intmodel-attention-threshold+1",
        "contract/intmodel/executor.py",
        'op.params["threshold"], cfg, trace',
        'op.params["threshold"] + 1, cfg, trace',
        REFERENCE,
    ),
    _m(
        "intmodel-temporal-grouping",
        "contract/intmodel/executor.py",
        "return xh.transpose(1, 2, 3, 0, 4)",
        "return xh.transpose(1, 0, 3, 2, 4)",
        REFERENCE,
    ),
    _m(
        "intmodel-token-order",
        "contract/intmodel/executor.py",
        "xs[0].reshape(t, b, c, h * w).transpose(0, 1, 3, 2)",
        "xs[0].transpose(0, 1, 2, 4, 3).reshape(t, b, c, h * w).transpose(0, 1, 3, 2)",
        REFERENCE,
    ),
    _m(
        "intmodel-head-pool-skips-step-0",
        "contract/intmodel/executor.py",
        "pooled = nm.sum_pool(xs[0], axes=(0, 2))",
        "pooled = nm.sum_pool(xs[0][1:], axes=(0, 2))",
        REFERENCE,
    ),
    _m(
        "intmodel-conv-threshold-order",
        "contract/intmodel/executor.py",
        'theta = op.tensors["threshold"][:, None, None]',
        'theta = op.tensors["threshold"][::-1, None, None]',
        REFERENCE,
    ),
    _m(
        "intmodel-leak-shift-fixed-1",
        "contract/intmodel/executor.py",
        "leak_shift=cfg.leak_shift, membrane_bits",
        "leak_shift=1, membrane_bits",
        REFERENCE,
    ),
    _m(
        "intmodel-conv-stride-ignored",
        "contract/intmodel/executor.py",
        '        stride=op.params["stride"],\n        padding=op.params["padding"],\n',
        '        stride=1,\n        padding=op.params["padding"],\n',
        REFERENCE,
    ),
    _m(
        "intmodel-pool-padding-dropped",
        "contract/intmodel/executor.py",
        'stride=op.params["stride"], padding=op.params["padding"]',
        'stride=op.params["stride"], padding=0',
        REFERENCE,
    ),
    _m(
        "intmodel-input-clip-1",
        "contract/intmodel/inputs.py",
        "x = np.minimum(x, input_max)",
        "x = np.minimum(x, input_max - 1)",
        REFERENCE,
    ),
    # ------------------------------------------------------------------ compiler
    _m("compiler-conv-pad-top", "protocol/compiler/builder.py", "pad_top=pad,", "pad_top=0,", COMPILER),
    _m("compiler-conv-stride", "protocol/compiler/builder.py", "stride=stride,", "stride=1,", COMPILER),
    _m(
        "compiler-weight-tap-order",
        "protocol/compiler/builder.py",
        "weight.transpose(0, 2, 3, 1)",
        "weight.transpose(0, 3, 2, 1)",
        COMPILER,
    ),
    _m(
        "compiler-add-count-1",
        "protocol/compiler/builder.py",
        "count=a.positions * a.channels,",
        "count=a.positions * a.channels - 1,",
        COMPILER,
    ),
    _m(
        "compiler-head-in-w-1",
        "protocol/compiler/builder.py",
        "in_w=src.positions,",
        "in_w=src.positions - 1,",
        COMPILER,
    ),
    _m(
        "compiler-band-pad-top",
        "protocol/compiler/banding.py",
        "pad_top=band.conv_pad_top)",
        "pad_top=0)",
        COMPILER,
    ),
    _m(
        "compiler-bias-threshold-swap",
        "protocol/compiler/payloads.py",
        "(padded_b & 0xFFFF_FFFF) | ((padded_t & 0xFFFF_FFFF) << 32)",
        "(padded_t & 0xFFFF_FFFF) | ((padded_b & 0xFFFF_FFFF) << 32)",
        COMPILER,
    ),
    # ------------------------------------------------------------------ stream packing and driver
    _m(
        "program-stream-word-order",
        "protocol/program.py",
        "padded.reshape(-1, per) << shifts",
        "padded.reshape(-1, per)[:, ::-1] << shifts",
        DRIVER,
    ),
    _m(
        "program-plane-order",
        "protocol/program.py",
        "(x[None] >> np.arange(planes)[:, None, None, None]) & 1",
        "(x[None] >> np.arange(planes)[::-1, None, None, None]) & 1",
        DRIVER,
    ),
    _m(
        "program-trace-layout",
        "protocol/program.py",
        "value = value.transpose(0, 2, 1).reshape(t, c, h, w)",
        "value = value.reshape(t, c, h, w)",
        DRIVER,
    ),
    _m(
        "program-input-token-order",
        "protocol/program.py",
        "tokens = x.reshape(self.timesteps, c, h * w).transpose(0, 2, 1)",
        "tokens = x.transpose(0, 1, 3, 2).reshape(self.timesteps, c, h * w).transpose(0, 2, 1)",
        DRIVER,
    ),
    _m(
        "packing-trace-batch-axis",
        "host/packing.py",
        "np.concatenate([t[name] for t in traces], axis=1)",
        "np.concatenate([t[name] for t in traces], axis=0)",
        DRIVER,
    ),
    _m(
        "packing-input-limit+1",
        "host/packing.py",
        "limit = (1 << program.input_planes) - 1",
        "limit = 1 << program.input_planes",
        DRIVER,
    ),
    _m(
        "packing-packet-offset", "host/packing.py", "offset += spec.words", "offset += spec.words + 1", DRIVER
    ),
)


class MutationError(RuntimeError):
    """The mutation list does not fit the code, or the unmutated copy fails its tests."""


@dataclass(frozen=True)
class Result:
    mutation: Mutation
    outcome: str  # "killed", "killed (error)", "killed (timeout)" or "survived"
    seconds: float
    failed: str = ""  # the first failing test, from pytest's summary

    @property
    def killed(self) -> bool:
        return self.outcome != "survived"


def check_mutation(mutation: Mutation, tree: Path) -> str:
    """The text of ``mutation.file`` in ``tree``; raise unless its original occurs exactly once."""
    path = tree / mutation.file
    if not path.is_file():
        raise MutationError(f"mutation {mutation.name!r}: {mutation.file} does not exist")
    text = path.read_text(encoding="utf-8")
    found = text.count(mutation.original)
    if found != 1:
        raise MutationError(
            f"mutation {mutation.name!r}: its original text occurs {found} times in {mutation.file}, "
            f"not exactly once: {mutation.original!r}"
        )
    if mutation.replacement == mutation.original:
        raise MutationError(f"mutation {mutation.name!r}: the replacement equals the original")
    for test in mutation.tests:
        if not (tree / test.split("::")[0]).is_file():
            raise MutationError(f"mutation {mutation.name!r}: test {test} does not exist")
    return text


def copy_tree(dst: Path) -> None:
    """Copy the tracked and untracked non-ignored files of the working tree to ``dst``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel, follow_symlinks=False)


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return env


def check_imports(tree: Path) -> None:
    """Check that Python run like the tests imports the project from the copy, not from the
    editable install of the working tree."""
    probe = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *PACKAGES],
        cwd=tree,
        env=environment(tree),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    outside = [f for f in out if not Path(f).resolve().is_relative_to(tree.resolve())]
    if len(out) != len(PACKAGES) or outside:
        raise MutationError(f"the copy's packages are not what gets imported: {outside or out}")
    # The same under pytest (its rootdir and conftest handling), with a probe test in the copy.
    probe_test = tree / "tests" / "test_zz_mutation_probe.py"
    probe_test.write_text(
        "from pathlib import Path\n\nimport contract, host, hw, protocol, sim\n\n\n"
        "def test_imports_come_from_the_copy() -> None:\n"
        "    for module in (contract, host, hw, protocol, sim):\n"
        f"        assert Path(module.__file__).resolve().is_relative_to({str(tree.resolve())!r}), module\n"
    )
    try:
        rc, output, _ = run_pytest(tree, (str(probe_test.relative_to(tree)),), timeout=300)
    finally:
        probe_test.unlink()
    if rc != 0:
        raise MutationError(f"the import probe under pytest failed:\n{output}")


def run_pytest(tree: Path, tests: Sequence[str], *, timeout: float) -> tuple[int | None, str, float]:
    """``(return code or None on timeout, output tail, seconds)`` of pytest on ``tests`` in ``tree``."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *PYTEST_FLAGS, *tests],
        cwd=tree,
        env=environment(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends its children too
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        rc = None
    finally:
        if proc.poll() is None:  # interrupted: leave no pytest running in the removed copy
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, output[-3000:], time.monotonic() - start


def run_mutation(mutation: Mutation, tree: Path, *, timeout: float) -> Result:
    """Apply ``mutation`` in ``tree``, run its tests, revert it."""
    path = tree / mutation.file
    original = check_mutation(mutation, tree)
    path.write_text(original.replace(mutation.original, mutation.replacement), encoding="utf-8")
    try:
        rc, output, seconds = run_pytest(tree, mutation.tests, timeout=timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    if rc is None:
        return Result(mutation, "killed (timeout)", seconds)
    if rc in (4, 5):  # usage error / no tests collected: the list is wrong, not the code
        raise MutationError(
            f"mutation {mutation.name!r}: pytest could not run its tests (rc {rc}):\n{output}"
        )
    outcome = {0: "survived", 1: "killed"}.get(rc, "killed (error)")
    summary = [line.split()[1] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return Result(mutation, outcome, seconds, summary[0] if summary else "")


def short(tests: Sequence[str]) -> str:
    names = (Path(t.split("::")[0]).stem.removeprefix("test_") for t in tests)
    return ",".join(dict.fromkeys(names))


def print_table(results: Sequence[Result]) -> None:
    rows = [("mutation", "file", "tests run", "result", "seconds")]
    rows += [
        (r.mutation.name, r.mutation.file, short(r.mutation.tests), r.outcome, f"{r.seconds:.1f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    killed = sum(r.killed for r in results)
    print(f"\nkill rate: {killed}/{len(results)} = {100 * killed / max(len(results), 1):.0f}%")
    survivors = [r.mutation.name for r in results if not r.killed]
    print("survivors: " + (", ".join(survivors) if survivors else "none"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutation (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--list", action="store_true", help="check and list the mutations, run nothing")
    args = parser.parse_args(argv)
    # A plain `kill` should still revert, stop pytest and remove the copy (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    names = [m.name for m in MUTATIONS]
    if len(set(names)) != len(names):
        raise MutationError("mutation names must be unique")
    selected = list(MUTATIONS)
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise MutationError(f"unknown mutations {unknown}; see --list")
        selected = [m for m in MUTATIONS if m.name in args.only]
    for mutation in selected:  # fail before copying anything
        check_mutation(mutation, ROOT)
    if args.list:
        for m in selected:
            print(f"{m.name:34s} {m.file:32s} {short(m.tests)}")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="mutate-"))
    try:
        tree = tmp / "tree"
        copy_tree(tree)
        check_imports(tree)
        union = sorted({t for m in selected for t in m.tests})
        print(f"unmutated copy in {tree}: running {short(union)} ...", flush=True)
        rc, output, seconds = run_pytest(tree, union, timeout=max(args.timeout, 1200))
        if rc != 0:
            raise MutationError(f"the unmutated copy fails its tests (rc {rc}); fix that first:\n{output}")
        print(f"unmutated copy passes ({seconds:.0f} s)\n", flush=True)
        results = []
        for i, mutation in enumerate(selected, 1):
            result = run_mutation(mutation, tree, timeout=args.timeout)
            by = f" by {result.failed}" if result.failed else ""
            print(
                f"[{i}/{len(selected)}] {mutation.name}: {result.outcome}{by} ({result.seconds:.1f} s)",
                flush=True,
            )
            results.append(result)
        print()
        print_table(results)
    finally:
        if args.keep:
            print(f"copy kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MutationError as exc:
        print(f"mutate: error: {exc}", file=sys.stderr)
        sys.exit(2)
