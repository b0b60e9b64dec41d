"""Verilog generation for every PE configuration.

``python -m hw.generate --out build/rtl`` writes, per named configuration of
:data:`protocol.params.PE_CONFIGS`, ``<name>.v`` (top module ``<name>``) and ``<name>.json``
(parameters, derived figures and the port list with every payload field's bit
offset), so testbenches and drivers read the hardware's shape back instead of
assuming it. The output is deterministic (``emit_src=False``: no source paths) and a
file is only rewritten when its content changes, which keeps ``make`` incremental.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape, ShapeCastable, Value
from amaranth.lib import data, wiring

from contract.files import atomic_write
from protocol.params import PE_CONFIGS, PEParams

__all__ = ["write_if_changed", "build_component", "verilog_of", "describe", "generate", "main"]

#: PE kind -> (module, component class); imported on use.
_COMPONENTS: dict[str, tuple[str, str]] = {
    "lif": ("hw.lif_pe", "LIFArray"),
    "synapse": ("hw.synapse_pe", "SynapseArray"),
    "attention": ("hw.attention_pe", "SpikeAttention"),
}


def build_component(params: PEParams) -> wiring.Component:
    """The PE component for a parameter object (dispatch on ``params.kind``)."""
    kind = getattr(params, "kind", None)
    if kind not in _COMPONENTS:
        raise TypeError(f"PE parameters must be one of {sorted(_COMPONENTS)} kinds, not {params!r}")
    module, cls = _COMPONENTS[kind]
    return getattr(importlib.import_module(module), cls)(params)


def verilog_of(component: wiring.Component, *, name: str) -> str:
    """Verilog text of ``component`` with top module ``name``, free of source paths."""
    if not name.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")
    return verilog.convert(component, name=name, emit_src=False)


def _fields(shape: ShapeCastable | Shape, prefix: str, offset: int) -> Iterable[dict[str, Any]]:
    """Leaf fields of a (nested) layout with absolute bit offsets, LSB first."""
    if isinstance(shape, data.Layout):
        for key, field in shape:
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else key)
            yield from _fields(field.shape, path, offset + field.offset)
    else:
        cast = Shape.cast(shape)
        yield {"field": prefix, "offset": offset, "width": cast.width, "signed": cast.signed}


def describe(component: wiring.Component, *, name: str, params: PEParams) -> dict[str, Any]:
    """JSON-able description: parameters, derived figures, ports and payload fields."""
    ports: list[dict[str, Any]] = [
        {"name": "clk", "direction": "input", "width": 1},
        {"name": "rst", "direction": "input", "width": 1},
    ]
    for path, member, value in component.signature.flatten(component):
        port: dict[str, Any] = {
            "name": "__".join(map(str, path)),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": len(Value.cast(value)),
        }
        if isinstance(member.shape, data.Layout):
            port["fields"] = list(_fields(member.shape, "", 0))
        ports.append(port)
    derived = {
        key: getattr(params, key)
        for key in (
            "latency",
            "stages",
            "threshold_bits",
            "neuron_steps_per_cycle",  # LIF
            "bias_width",
            "plane_bits",
            "synaptic_ops_per_cycle",  # synapse
            "count_bits",
            "sum_bits",
            "ops_per_cycle",  # attention
        )
        if hasattr(params, key)
    }
    return {
        "name": name,
        "kind": params.kind,
        "params": params.to_dict(),
        "derived": derived,
        "clock": "clk",
        "reset": "rst (synchronous, active high)",
        "ports": ports,
    }


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (creating its folder) unless it already holds it; whether it wrote.

    Verilator and make skip an unchanged design only if its files keep their timestamps; the
    write is atomic (:func:`contract.files.atomic_write`), so a parallel build never reads half
    a file.
    """
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write(path, text)
    return True


def generate(
    out: Path, *, kinds: Sequence[str] | None = None, names: Sequence[str] | None = None
) -> list[Path]:
    """Write ``<name>.v`` and ``<name>.json`` for the selected configurations; return the paths."""
    kinds = list(PE_CONFIGS) if kinds is None else list(kinds)
    unknown = sorted(set(kinds) - set(PE_CONFIGS))
    if unknown:
        raise ValueError(f"PE kind must be one of {sorted(PE_CONFIGS)}, not {unknown[0]!r}")
    selected = {name: params for kind in kinds for name, params in PE_CONFIGS[kind].items()}
    if names is not None:
        missing = sorted(set(names) - set(selected))
        if missing:
            known = ", ".join(sorted(selected))
            raise ValueError(f"No PE configuration named {missing[0]!r}; known: {known}")
        selected = {name: selected[name] for name in names}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, params in selected.items():
        component = build_component(params)
        text = verilog_of(component, name=name)
        # describe() after conversion: the signature is fixed by then either way.
        description = json.dumps(describe(component, name=name, params=params), indent=1) + "\n"
        for path, content in ((out / f"{name}.v", text), (out / f"{name}.json", description)):
            write_if_changed(path, content)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/rtl"), help="output directory")
    parser.add_argument(
        "--kind",
        action="append",
        choices=sorted(PE_CONFIGS),
        help="PE family to generate (repeatable; default all)",
    )
    parser.add_argument(
        "--config",
        action="append",
        dest="names",
        metavar="NAME",
        help="configuration name from protocol.params.PE_CONFIGS (repeatable; default all)",
    )
    parser.add_argument("--list", action="store_true", help="print the configuration names and exit")
    args = parser.parse_args(argv)
    if args.list:
        for kind, configs in PE_CONFIGS.items():
            for name, params in configs.items():
                print(f"{kind:10s} {name:24s} {params.to_dict()}")
        return 0
    try:
        paths = generate(args.out, kinds=args.kind, names=args.names)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {len(paths) // 2} PE configuration(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
