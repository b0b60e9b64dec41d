"""Stream drivers for unit tests of the PEs in Amaranth's simulator.

A PE is driven through its ``lib.stream`` ports with payloads given as integers or as
``{field: value}`` mappings, which :class:`sim.payload.PayloadCodec` packs from the port's
layout exactly as for the cocotb testbenches (:mod:`sim.stimulus` builds both), with optional
random idle cycles on the inputs and random back-pressure on the outputs. Every
transfer is logged with its cycle number, so tests can assert both the values and
the throughput. The sources obey the stream rules: once ``valid`` is high, it and
the payload hold until ``ready``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.sim import Simulator

from sim.payload import PayloadCodec

__all__ = ["StreamLog", "StreamRun", "StreamTimeout", "simulate_streams"]


class StreamTimeout(AssertionError):
    """The PE did not accept or produce the expected beats within the cycle budget (a hang)."""


@dataclass
class StreamLog:
    """Transfers seen on one stream port: payload integers and the cycle of each transfer."""

    payloads: list[int] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)


@dataclass
class StreamRun:
    """Result of :func:`simulate_streams`: a log per stream port, final values of observed ports."""

    logs: dict[str, StreamLog]
    final: dict[str, int]
    codecs: dict[str, PayloadCodec] = field(default_factory=dict)

    def __getitem__(self, port: str) -> StreamLog:
        return self.logs[port]

    def fields(self, port: str) -> list[Any]:
        """The payloads seen on ``port``, unpacked with its layout."""
        return [self.codecs[port].unpack(word) for word in self.logs[port].payloads]


def _payload(port: wiring.PureInterface) -> Value:
    return Value.cast(port.payload)


def simulate_streams(
    dut: wiring.Component,
    *,
    inputs: Mapping[str, Sequence[int | Mapping[str, Any]]],
    outputs: Mapping[str, int],
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    max_cycles: int = 100_000,
    drain_cycles: int = 8,
    observe: Sequence[str] = (),
    vcd_path: str | None = None,
) -> StreamRun:
    """Stream ``inputs`` into ``dut`` and collect ``outputs`` beats; return a log per port.

    Parameters
    ----------
    dut:
        The component; ``inputs``/``outputs`` name its stream ports (``"inp"``, ``"out"``).
    inputs:
        Port name -> payloads, sent in order: integers, or mappings packed with the port's
        layout.
    outputs:
        Port name -> number of beats expected; after the last one the port is watched
        for ``drain_cycles`` more cycles and any extra beat is an error.
    seed, valid_prob, ready_prob:
        Each cycle an idle source offers its next beat with probability ``valid_prob``;
        each cycle a sink is ready with probability ``ready_prob``.
    max_cycles:
        Budget after which a still-waiting port raises :class:`StreamTimeout`.
    observe:
        Names of plain signal ports (status flags) whose values at the end of the run
        go into :attr:`StreamRun.final`.
    """
    rng = random.Random(seed)
    codecs = {name: PayloadCodec.of(dut, name) for name in (*inputs, *outputs)}
    inputs = {
        name: [codecs[name].pack(word) if isinstance(word, Mapping) else int(word) for word in payloads]
        for name, payloads in inputs.items()
    }
    logs = {name: StreamLog() for name in (*inputs, *outputs)}
    final: dict[str, int] = {}
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    def make_source(name: str, payloads: Sequence[int], port_rng: random.Random):
        port = getattr(dut, name)

        async def source(ctx) -> None:
            index, cycle = 0, 0
            while index < len(payloads):
                if cycle >= max_cycles:
                    raise StreamTimeout(
                        f"{name}: only {index} of {len(payloads)} beats accepted in {max_cycles} cycles"
                    )
                # A pending beat stays offered; an idle source offers the next one at random.
                offer = ctx.get(port.valid) or port_rng.random() < valid_prob
                ctx.set(port.valid, offer)
                ctx.set(_payload(port), payloads[index])
                _, _, ready = await ctx.tick().sample(port.ready)
                if offer and ready:
                    logs[name].payloads.append(payloads[index])
                    logs[name].cycles.append(cycle)
                    index += 1
                    ctx.set(port.valid, 0)
                cycle += 1
            ctx.set(port.valid, 0)

        return source

    def make_sink(name: str, count: int, port_rng: random.Random):
        port = getattr(dut, name)

        async def sink(ctx) -> None:
            cycle, extra = 0, 0
            while len(logs[name].payloads) < count or extra < drain_cycles:
                if len(logs[name].payloads) < count and cycle >= max_cycles:
                    raise StreamTimeout(
                        f"{name}: only {len(logs[name].payloads)} of {count} beats "
                        f"produced in {max_cycles} cycles"
                    )
                done = len(logs[name].payloads) >= count
                ready = done or port_rng.random() < ready_prob
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, _payload(port))
                if valid and ready:
                    if done:
                        raise AssertionError(
                            f"{name}: unexpected beat {payload:#x} after the {count} expected ones"
                        )
                    logs[name].payloads.append(payload)
                    logs[name].cycles.append(cycle)
                extra += done
                cycle += 1
            final.update({flag: ctx.get(getattr(dut, flag)) for flag in observe})

        return sink

    # Each port draws from its own generator so adding a port does not reshuffle the others.
    for name, payloads in inputs.items():
        sim.add_testbench(make_source(name, payloads, random.Random(rng.random())))
    for name, count in outputs.items():
        sim.add_testbench(make_sink(name, count, random.Random(rng.random())))
    if vcd_path is not None:
        with sim.write_vcd(vcd_path):
            sim.run()
    else:
        sim.run()
    return StreamRun(logs, final, codecs)
