"""AEDAT 2.0 and 3.1 event-file readers (vectorized numpy) and format detection.

Both formats start with ASCII header lines beginning with ``#``; the first line names
the version (``#!AER-DAT2.0`` / ``#!AER-DAT3.1``). Everything after the header is
decoded with ``np.frombuffer`` views: only the packet loop of AEDAT 3.1 runs in
Python, never a per-event loop.

AEDAT 2.0 (jAER, used by the original CIFAR10-DVS release)
    Big-endian pairs ``(u32 address, u32 timestamp_us)`` after the header. DVS128
    addresses decode as ``x = (a & 0xFE) >> 1``, ``y = (a & 0x7F00) >> 8``,
    ``p = a & 1``. The header ends at the first line that does not start with
    ``#`` (a DVS128 address word starts with a zero byte, never ``#``).

AEDAT 3.1 (cAER, used by DVS128 Gesture)
    Header lines end with ``\\r\\n``; the last is ``#!END-HEADER``. Then packets: a
    28-byte little-endian header ``<hhiiiiii`` (eventType, eventSource, eventSize,
    eventTSOffset, eventTSOverflow, eventCapacity, eventNumber, eventValid) and
    ``eventCapacity * eventSize`` bytes of events. Polarity packets (type 1, size 8)
    hold ``(u32 data, i32 timestamp)``: bit 0 = valid, bit 1 = polarity,
    ``y = (data >> 2) & 0x7FFF``, ``x = (data >> 17) & 0x7FFF``; the full timestamp
    is ``timestamp | (eventTSOverflow << 31)``. Packets of other types are skipped.

Every malformed input raises :class:`~golden.data.errors.AedatFormatError` naming the
file and the byte offset.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .errors import AedatFormatError
from .events import EVENT_DTYPE, make_events

__all__ = [
    "AEDAT2_MAGIC",
    "AEDAT3_MAGIC",
    "AEDAT4_MAGIC",
    "AEDAT3_PACKET_HEADER",
    "POLARITY_EVENT",
    "aedat_version",
    "read_aedat",
    "read_aedat2",
    "read_aedat3",
]

AEDAT2_MAGIC = b"#!AER-DAT2.0"
AEDAT3_MAGIC = b"#!AER-DAT3.1"
AEDAT4_MAGIC = b"#!AER-DAT4.0"
AEDAT3_END_HEADER = b"#!END-HEADER\r\n"
AEDAT3_PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1
_POLARITY_SIZE = 8
_POLARITY_TS_OFFSET = 4
_AEDAT3_RAW = np.dtype([("data", "<u4"), ("ts", "<i4")])
_AEDAT2_RAW = np.dtype([("address", ">u4"), ("ts", ">u4")])
_VERSIONS = {AEDAT2_MAGIC: "2.0", AEDAT3_MAGIC: "3.1", AEDAT4_MAGIC: "4.0"}


def _read(path: str | os.PathLike[str]) -> bytes:
    return Path(path).read_bytes()


def _first_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return (data if end < 0 else data[:end]).rstrip(b"\r")


def aedat_version(path: str | os.PathLike[str]) -> str:
    """Version string (``"2.0"``, ``"3.1"`` or ``"4.0"``) from the file's first line."""
    with open(path, "rb") as f:
        head = f.read(64)
    line = _first_line(head)
    try:
        return _VERSIONS[line]
    except KeyError:
        raise AedatFormatError(path, 0, f"not an AEDAT 2.0/3.1/4.0 file: first line {line[:32]!r}") from None


def _expect_magic(path: str | os.PathLike[str], data: bytes, magic: bytes) -> None:
    line = _first_line(data[:64])
    if line != magic:
        raise AedatFormatError(path, 0, f"expected first line {magic.decode()!r}, found {line[:32]!r}")


def read_aedat(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any supported AEDAT version, chosen by the first line.

    AEDAT 2.0 addresses are decoded with the DVS128 layout and no orientation fix
    (see :func:`golden.data.events.cifar10dvs_flip`).
    """
    version = aedat_version(path)
    if version == "2.0":
        return read_aedat2(path)
    if version == "3.1":
        return read_aedat3(path)
    from .aedat4 import read_aedat4

    return read_aedat4(path)


def _aedat2_header_end(path: str | os.PathLike[str], data: bytes) -> int:
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"#":
        end = data.find(b"\n", pos)
        if end < 0:
            raise AedatFormatError(path, pos, "header line is not terminated by a newline")
        pos = end + 1
    return pos


def read_aedat2(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a jAER AEDAT 2.0 file of DVS128 events.

    Returns
    -------
    numpy.ndarray
        :data:`~golden.data.events.EVENT_DTYPE` events in file order, coordinates as
        recorded (no orientation fix).

    Raises
    ------
    AedatFormatError
        Wrong first line, an unterminated header, or a trailing partial event.
    """
    data = _read(path)
    _expect_magic(path, data, AEDAT2_MAGIC)
    start = _aedat2_header_end(path, data)
    body = len(data) - start
    if body % _AEDAT2_RAW.itemsize:
        whole = start + body - body % _AEDAT2_RAW.itemsize
        raise AedatFormatError(
            path, whole, f"truncated event: {body % _AEDAT2_RAW.itemsize} trailing bytes (events are 8 bytes)"
        )
    raw = np.frombuffer(data, dtype=_AEDAT2_RAW, offset=start)
    address = raw["address"]
    return make_events(
        raw["ts"].astype(np.int64),
        (address & 0xFE) >> 1,
        (address & 0x7F00) >> 8,
        address & 1,
    )


def _aedat3_header_end(path: str | os.PathLike[str], data: bytes) -> int:
    _expect_magic(path, data, AEDAT3_MAGIC)
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise AedatFormatError(path, pos, "header ends before '#!END-HEADER'")
        if data[pos : pos + 1] != b"#":
            raise AedatFormatError(path, pos, f"header line does not start with '#': {data[pos:end][:32]!r}")
        if data[pos : end + 2] == AEDAT3_END_HEADER:
            return end + 2
        pos = end + 2


def read_aedat3(path: str | os.PathLike[str], *, valid_only: bool = True) -> np.ndarray:
    """Read the polarity events of a cAER AEDAT 3.1 file.

    Parameters
    ----------
    path:
        The ``.aedat`` file.
    valid_only:
        Drop events whose valid bit (bit 0) is clear, as cAER marks filtered events.

    Returns
    -------
    numpy.ndarray
        :data:`~golden.data.events.EVENT_DTYPE` events in file order.

    Raises
    ------
    AedatFormatError
        Wrong first line, unterminated header, a truncated packet, a polarity packet
        with the wrong event size, or a negative timestamp.
    """
    data = _read(path)
    pos = _aedat3_header_end(path, data)
    chunks: list[np.ndarray] = []
    overflows: list[int] = []
    header_size = AEDAT3_PACKET_HEADER.size
    while pos < len(data):
        if len(data) - pos < header_size:
            raise AedatFormatError(
                path, pos, f"truncated packet header: {len(data) - pos} of {header_size} bytes"
            )
        fields = AEDAT3_PACKET_HEADER.unpack_from(data, pos)
        etype, _, size, ts_offset, ts_overflow, capacity, number, _ = fields
        if size <= 0 or capacity < 0 or not 0 <= number <= capacity:
            raise AedatFormatError(
                path, pos, f"invalid packet header: eventSize {size}, capacity {capacity}, number {number}"
            )
        body = pos + header_size
        end = body + capacity * size
        if end > len(data):
            raise AedatFormatError(
                path, pos, f"truncated packet: declares {end - body} bytes, {len(data) - body} remain"
            )
        if etype == POLARITY_EVENT:
            if size != _POLARITY_SIZE or ts_offset != _POLARITY_TS_OFFSET:
                raise AedatFormatError(
                    path, pos, f"polarity packet: eventSize {size}, eventTSOffset {ts_offset} (expected 8, 4)"
                )
            raw = np.frombuffer(data, dtype=_AEDAT3_RAW, count=number, offset=body)
            negative = np.flatnonzero(raw["ts"] < 0)
            if len(negative):
                raise AedatFormatError(path, body + 8 * int(negative[0]) + 4, "negative event timestamp")
            chunks.append(raw)
            overflows.append(ts_overflow)
        pos = end
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    raw = np.concatenate(chunks)
    overflow = np.repeat(np.asarray(overflows, dtype=np.int64), [len(c) for c in chunks])
    if valid_only:
        keep = (raw["data"] & 1).astype(bool)
        raw, overflow = raw[keep], overflow[keep]
    word = raw["data"]
    return make_events(
        raw["ts"].astype(np.int64) | (overflow << 31),
        (word >> 17) & 0x7FFF,
        (word >> 2) & 0x7FFF,
        (word >> 1) & 1,
    )
