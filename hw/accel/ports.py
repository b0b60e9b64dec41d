"""Signatures and layouts shared by the core and its engines.

An engine (:mod:`hw.accel.engines`) executes one kind of command. It sees the
registered descriptor, a ``start`` pulse, and only the ports it needs: the
activation-memory read and write ports, the input/output stream words and the LIF
job stream of the shared LIF-and-writeback unit (:class:`hw.accel.lifunit.LIFUnit`).
The core multiplexes those ports to the engine of the running command.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.accel.layouts import DESCRIPTOR_LAYOUT
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.zero_skip import OCCUPANCY_ROW

__all__ = [
    "ADDRESS_BITS",
    "WORD_LAYOUT",
    "word_stream",
    "amem_read_signature",
    "amem_write_signature",
    "occupancy_read_signature",
    "lif_job_layout",
    "engine_members",
]

#: Width of activation-memory addresses on the engine ports; the core flags any address
#: at or beyond the memory depth (error ``ADDRESS``) and suppresses the access.
ADDRESS_BITS = 32

#: One stream word: 64 data bits and the AXI4-Stream ``TLAST`` flag.
WORD_LAYOUT = data.StructLayout({"data": unsigned(STREAM_BITS), "last": unsigned(1)})


def word_stream() -> stream.Signature:
    """Stream of :data:`WORD_LAYOUT` words (valid/ready handshake)."""
    return stream.Signature(WORD_LAYOUT)


def amem_read_signature(
    cfg: AcceleratorConfig, *, pairs: bool = False, split: bool = False
) -> wiring.Signature:
    """Activation-memory read port, engine side: ``data`` is the word at the ``addr`` of the
    previous cycle with ``en`` set (and holds while ``en`` is low); with ``pairs`` also
    ``next``, the word after it (from the other bank of the two-bank memory); with ``split``
    also ``split`` and ``odd_addr``: the banks addressed apart, ``data`` the even word ``addr``
    and ``next`` the odd word ``odd_addr`` (zero-word skipping)."""
    members = {"addr": Out(ADDRESS_BITS), "en": Out(1), "data": In(cfg.timesteps)}
    if pairs:
        members["next"] = In(cfg.timesteps)
        if split:
            members.update({"split": Out(1), "odd_addr": Out(ADDRESS_BITS)})
    return wiring.Signature(members)


def occupancy_read_signature() -> wiring.Signature:
    """Occupancy-memory read port, engine side: ``data`` is row ``addr`` of the previous cycle
    with ``en`` set (bit ``i``: activation word ``32 addr + i`` is non-zero) and holds while
    ``en`` is low."""
    return wiring.Signature({"addr": Out(ADDRESS_BITS), "en": Out(1), "data": In(OCCUPANCY_ROW)})


def amem_write_signature(cfg: AcceleratorConfig, *, pairs: bool = False) -> wiring.Signature:
    """Activation-memory write port, engine side; with ``pairs`` also ``next_en`` and
    ``next_data``: the word ``addr + 1`` (in the other bank of the two-bank memory) written in
    the same cycle, only with ``en``."""
    members = {"addr": Out(ADDRESS_BITS), "en": Out(1), "data": Out(cfg.timesteps)}
    if pairs:
        members.update({"next_en": Out(1), "next_data": Out(cfg.timesteps)})
    return wiring.Signature(members)


def lif_job_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """One LIF job: ``lif_lanes`` neurons' currents and thresholds, and where their spikes go.

    ``current[l][t]`` is lane ``l``'s input current at step ``t`` (as
    :func:`hw.lif_pe.input_layout`), ``threshold[l]`` its threshold; lane ``l``'s spike
    word goes to activation address ``addr + l`` if ``l < lanes``.
    """
    lif = cfg.lif_params()
    return data.StructLayout(
        {
            "current": data.ArrayLayout(
                data.ArrayLayout(signed(lif.membrane_bits), lif.timesteps), lif.lanes
            ),
            "threshold": data.ArrayLayout(signed(lif.threshold_bits), lif.lanes),
            "addr": unsigned(ADDRESS_BITS),
            "lanes": unsigned((lif.lanes).bit_length()),
        }
    )


def engine_members(
    cfg: AcceleratorConfig,
    *,
    read: bool = False,
    read_pairs: bool = False,
    write: bool = False,
    write_pairs: bool = False,
    words_in: bool = False,
    words_out: bool = False,
    lif: bool = False,
    occupancy: bool = False,
) -> dict[str, object]:
    """Signature members of an engine: the control ports plus the data ports it uses.

    Control: ``start`` (pulse, the descriptor is valid), ``desc`` (the registered
    descriptor), ``tmask`` (bit ``t`` set for the command's time steps), ``busy``.
    ``read_pairs``: the read port also returns the next word (:func:`amem_read_signature`);
    ``occupancy``: the engine also reads the occupancy memory and addresses the banks apart;
    ``write_pairs``: the write port also writes the next word (:func:`amem_write_signature`).
    """
    members: dict[str, object] = {
        "start": In(1),
        "desc": In(DESCRIPTOR_LAYOUT),
        "tmask": In(cfg.timesteps),
        "busy": Out(1),
    }
    if read:
        members["rd"] = Out(amem_read_signature(cfg, pairs=read_pairs, split=occupancy))
    if write:
        members["wr"] = Out(amem_write_signature(cfg, pairs=write_pairs))
    if words_in:
        members["words_in"] = In(word_stream())
    if words_out:
        members["words_out"] = Out(word_stream())
    if lif:
        members["lif_job"] = Out(stream.Signature(lif_job_layout(cfg)))
        members["lif_idle"] = In(1)
    if occupancy:
        members["occ"] = Out(occupancy_read_signature())
    return members
