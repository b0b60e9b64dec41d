"""AEDAT 2.0 / 3.1 / 4.0 writers: the exact inverses of the readers.

They serve the synthetic-event generator (valid files in the real dataset layouts)
and the round-trip tests; the byte layouts are documented in :mod:`golden.data.aedat`
and :mod:`golden.data.aedat4`. Writing is vectorized like reading.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import flatbuffers
import numpy as np

from .aedat import AEDAT2_MAGIC, AEDAT3_END_HEADER, AEDAT3_MAGIC, AEDAT3_PACKET_HEADER, POLARITY_EVENT
from .aedat4 import AEDAT4_EVENT, EVENTS_IDENTIFIER, IOHEADER_IDENTIFIER, MAGIC, PACKET_HEADER, Compression
from .events import check_events

__all__ = ["write_aedat2", "write_aedat3", "write_aedat4"]

_SPECIAL_EVENT = 0
_TIMESTAMP_RESET = 2  # cAER special-event type recorded at the start of a DVS128 stream


def _check_range(events: np.ndarray, field: str, low: int, high: int, fmt: str) -> None:
    values = events[field]
    if len(values) and (values.min() < low or values.max() > high):
        found = f"{values.min()}..{values.max()}"
        raise ValueError(f"{fmt}: event {field} must lie in [{low}, {high}], found {found}")


def _chunks(n: int, size: int) -> list[slice]:
    if size < 1:
        raise ValueError(f"packet_size must be a positive integer, not {size!r}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def write_aedat2(path: str | os.PathLike[str], events: np.ndarray) -> None:
    """Write DVS128 events as a jAER AEDAT 2.0 file (big-endian address/timestamp pairs).

    ``x`` and ``y`` must lie in ``0..127`` and ``t`` in the unsigned 32-bit range.
    """
    check_events(events)
    for field in ("x", "y"):
        _check_range(events, field, 0, 127, "AEDAT 2.0 DVS128")
    _check_range(events, "t", 0, 2**32 - 1, "AEDAT 2.0")
    raw = np.empty((len(events), 2), dtype=">u4")
    raw[:, 0] = (events["y"].astype(np.uint32) << 8) | (events["x"].astype(np.uint32) << 1) | events["p"]
    raw[:, 1] = events["t"]
    header = (
        AEDAT2_MAGIC + b"\r\n"
        b"# Written by golden.data.aedat_write (synthetic events)\r\n"
        b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
        b"# Timestamps tick is 1 us\r\n"
    )
    Path(path).write_bytes(header + raw.tobytes())


def write_aedat3(
    path: str | os.PathLike[str],
    events: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    packet_size: int = 4096,
) -> None:
    """Write events as a cAER AEDAT 3.1 file of polarity packets.

    A special-event packet (timestamp reset) comes first, as in real recordings, so
    readers must skip non-polarity packets. Packets never straddle a timestamp
    overflow (``t >> 31``).

    Parameters
    ----------
    events:
        Events with ``x, y`` in ``0..32767`` and ``t >= 0``.
    valid:
        Optional boolean mask; events where it is ``False`` get a clear valid bit.
    packet_size:
        Maximum events per packet.
    """
    check_events(events)
    for field in ("x", "y"):
        _check_range(events, field, 0, 0x7FFF, "AEDAT 3.1")
    _check_range(events, "t", 0, 2**62 - 1, "AEDAT 3.1")
    valid = np.ones(len(events), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != events.shape:
        raise ValueError(f"valid mask has shape {valid.shape}, events {events.shape}")
    word = (
        (events["x"].astype(np.uint32) << 17)
        | (events["y"].astype(np.uint32) << 2)
        | (events["p"].astype(np.uint32) << 1)
        | valid.astype(np.uint32)
    )
    overflow = events["t"] >> 31
    raw = np.empty((len(events), 2), dtype="<u4")
    raw[:, 0] = word
    raw[:, 1] = events["t"] & 0x7FFFFFFF
    parts = [
        AEDAT3_MAGIC + b"\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: synthetic (golden.data)\r\n",
        AEDAT3_END_HEADER,
    ]
    first_t = int(events["t"][0]) if len(events) else 0
    special = np.array([[(_TIMESTAMP_RESET << 1) | 1, first_t & 0x7FFFFFFF]], dtype="<u4")
    special_head = AEDAT3_PACKET_HEADER.pack(_SPECIAL_EVENT, 1, 8, 4, first_t >> 31, 1, 1, 1)
    parts.append(special_head + special.tobytes())
    # Packets split where the overflow counter changes, then every packet_size events.
    bounds = np.flatnonzero(np.diff(overflow)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(events)], strict=True):
        for part in _chunks(int(hi - lo), packet_size):
            sel = slice(lo + part.start, lo + part.stop)
            n = sel.stop - sel.start
            head = AEDAT3_PACKET_HEADER.pack(
                POLARITY_EVENT, 1, 8, 4, int(overflow[sel.start]), n, n, int(valid[sel].sum())
            )
            parts.append(head + raw[sel].tobytes())
    Path(path).write_bytes(b"".join(parts))


def _description(compression: Compression, width: int, height: int, source: str) -> str:
    dv = ET.Element("dv", version="2.0")
    out = ET.SubElement(dv, "node", name="outInfo", path="/mainloop/writer/outInfo/")
    stream = ET.SubElement(out, "node", name="0", path="/mainloop/writer/outInfo/0/")
    for key, value in (
        ("compression", compression.name),
        ("originalModuleName", "golden.data"),
        ("originalOutputName", "events"),
        ("typeDescription", "Array of events (polarity ON/OFF)."),
        ("typeIdentifier", "EVTS"),
    ):
        ET.SubElement(stream, "attr", key=key, type="string").text = value
    info = ET.SubElement(stream, "node", name="info", path="/mainloop/writer/outInfo/0/info/")
    ET.SubElement(info, "attr", key="sizeX", type="int").text = str(width)
    ET.SubElement(info, "attr", key="sizeY", type="int").text = str(height)
    ET.SubElement(info, "attr", key="source", type="string").text = source
    # The description must start with the <dv> element (no XML declaration).
    return ET.tostring(dv, encoding="unicode")


def _ioheader(compression: Compression, width: int, height: int, source: str) -> bytes:
    builder = flatbuffers.Builder(1024)
    description = builder.CreateString(_description(compression, width, height, source))
    builder.StartObject(3)
    builder.PrependInt32Slot(0, int(compression), 0)
    builder.PrependInt64Slot(1, -1, -1)
    builder.PrependUOffsetTRelativeSlot(2, description, 0)
    builder.Finish(builder.EndObject(), file_identifier=IOHEADER_IDENTIFIER)
    return bytes(builder.Output())


def _event_packet(events: np.ndarray) -> bytes:
    packed = np.zeros(len(events), dtype=AEDAT4_EVENT)
    packed["t"], packed["x"], packed["y"], packed["on"] = events["t"], events["x"], events["y"], events["p"]
    payload = packed.tobytes()
    builder = flatbuffers.Builder(len(payload) + 64)
    # A vector of structs is one aligned block: copy it in whole, as CreateNumpyVector
    # does for scalars, instead of prepending every field of every event.
    builder.StartVector(AEDAT4_EVENT.itemsize, len(events), 8)
    builder.head -= len(payload)
    builder.Bytes[builder.head : builder.head + len(payload)] = payload
    elements = builder.EndVector()
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, elements, 0)
    builder.FinishSizePrefixed(builder.EndObject(), file_identifier=EVENTS_IDENTIFIER)
    return bytes(builder.Output())


def _compress(data: bytes, compression: Compression) -> bytes:
    if compression == Compression.NONE:
        return data
    if compression in (Compression.LZ4, Compression.LZ4_HIGH):
        import lz4.frame

        level = lz4.frame.COMPRESSIONLEVEL_MINHC if compression == Compression.LZ4_HIGH else 0
        return lz4.frame.compress(data, compression_level=level)
    import zstandard

    return zstandard.ZstdCompressor(level=19 if compression == Compression.ZSTD_HIGH else 3).compress(data)


def write_aedat4(
    path: str | os.PathLike[str],
    events: np.ndarray,
    *,
    compression: Compression | str = Compression.LZ4,
    width: int = 128,
    height: int = 128,
    packet_size: int = 4096,
    source: str = "golden.data",
) -> None:
    """Write events as an AEDAT 4.0 file with one event stream (id 0).

    Parameters
    ----------
    compression:
        A :class:`~golden.data.aedat4.Compression` or its name (``"lz4"``, ``"zstd"``, ...).
    width, height:
        Sensor size recorded in the stream description; coordinates must fit.
    packet_size:
        Maximum events per packet.
    source:
        Camera name recorded as the stream's ``info/source``. iniVation's readers
        (dv-processing) group streams by this attribute and refuse a file without it.
    """
    check_events(events)
    if isinstance(compression, str):
        try:
            compression = Compression[compression.upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in Compression)
            raise ValueError(f"compression must be one of {names}, not {compression!r}") from None
    _check_range(events, "x", 0, width - 1, "AEDAT 4.0")
    _check_range(events, "y", 0, height - 1, "AEDAT 4.0")
    if not source:
        raise ValueError("source (the camera name) must be a non-empty string")
    header = _ioheader(compression, width, height, source)
    parts = [MAGIC, len(header).to_bytes(4, "little"), header]
    for sel in _chunks(len(events), packet_size):
        payload = _compress(_event_packet(events[sel]), compression)
        parts.append(PACKET_HEADER.pack(0, len(payload)) + payload)
    Path(path).write_bytes(b"".join(parts))
