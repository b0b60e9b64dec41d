"""AEDAT 4.0 event-file reader (iniVation DV), decoded with the ``flatbuffers`` runtime.

File layout::

    "#!AER-DAT4.0\\r\\n"                        14 bytes
    u32 n                                       little-endian length of the IOHeader
    IOHeader flatbuffer                         n bytes, file identifier "IOHE"
    packets until dataTablePosition (or EOF):
        i32 streamID, i32 size                  little-endian
        payload                                 size bytes, compressed as the IOHeader says

Schema fields relied on (field index -> vtable slot ``4 + 2 * index``)::

    enum CompressionType : int32 { NONE, LZ4, LZ4_HIGH, ZSTD, ZSTD_HIGH }
    table IOHeader {                            // file_identifier "IOHE"
        compression: CompressionType = NONE;    // field 0
        dataTablePosition: int64 = -1;          // field 1: FileDataTable offset, -1 = none
        infoNode: string;                       // field 2: XML stream description
    }
    struct Event { t: int64; x: int16; y: int16; on: bool; }   // 16 bytes, 8-aligned
    table EventPacket { elements: [Event]; }    // field 0; file_identifier "EVTS"

A decompressed payload is a *size-prefixed* flatbuffer: ``u32 size``, ``u32`` root
offset, the 4-byte file identifier, then the tables. LZ4 payloads are LZ4 frames,
ZSTD payloads zstd frames. Packets whose identifier is not ``EVTS`` (frames, IMU,
triggers) are skipped; the infoNode XML (``<dv><node name="outInfo"><node name="ID">``
with ``typeIdentifier``, ``compression`` and ``info/sizeX``, ``info/sizeY``,
``info/source``) is parsed by
:func:`aedat4_streams`.

The Python flatbuffers runtime does not verify buffers, so every offset is
bounds-checked here before it is followed; a bad one raises
:class:`~golden.data.errors.AedatFormatError` with the file offset of the packet.
"""

from __future__ import annotations

import enum
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flatbuffers import table as fb_table

from .aedat import AEDAT4_MAGIC
from .errors import AedatFormatError
from .events import EVENT_DTYPE

__all__ = [
    "AEDAT4_EVENT",
    "Compression",
    "IOHeader",
    "StreamInfo",
    "aedat4_streams",
    "read_aedat4",
    "read_ioheader",
]

MAGIC = AEDAT4_MAGIC + b"\r\n"
PACKET_HEADER = struct.Struct("<ii")
# The Event struct as laid out in a flatbuffer vector (3 bytes of tail padding).
AEDAT4_EVENT = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "u1"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)
EVENTS_IDENTIFIER = b"EVTS"
IOHEADER_IDENTIFIER = b"IOHE"
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")


class Compression(enum.IntEnum):
    """Packet compression named by the IOHeader."""

    NONE = 0
    LZ4 = 1
    LZ4_HIGH = 2
    ZSTD = 3
    ZSTD_HIGH = 4


@dataclass(frozen=True)
class IOHeader:
    """Decoded IOHeader: compression, data-table position, XML description."""

    compression: Compression
    data_table_position: int
    description: str
    end: int  # file offset of the first packet


@dataclass(frozen=True)
class StreamInfo:
    """One output stream declared in the IOHeader description.

    ``compression`` repeats the IOHeader's compression name (iniVation writers set it
    per stream); ``source`` is the camera name that dv-processing groups streams by.
    Both are ``None`` when the description does not give them.
    """

    stream_id: int
    type_identifier: str
    width: int | None
    height: int | None
    compression: str | None = None
    source: str | None = None


class _Buffer:
    """A flatbuffer with checked navigation (the runtime itself checks nothing)."""

    def __init__(self, data: bytes, *, path: str | os.PathLike[str], offset: int) -> None:
        self.data = data
        self.path = path
        self.offset = offset  # file offset reported in errors

    def fail(self, reason: str) -> AedatFormatError:
        return AedatFormatError(self.path, self.offset, reason)

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or pos + size > len(self.data):
            raise self.fail(f"flatbuffer {what} at {pos} (+{size} B) outside a {len(self.data)}-byte buffer")

    def root(self, base: int, identifier: bytes | None) -> fb_table.Table:
        self.need(base, 8, "root offset")
        found = self.data[base + 4 : base + 8]
        if identifier is not None and found != identifier:
            raise self.fail(f"flatbuffer identifier {found!r}, expected {identifier!r}")
        pos = base + _U32.unpack_from(self.data, base)[0]
        self.need(pos, 4, "root table")
        vtable = pos - _I32.unpack_from(self.data, pos)[0]
        self.need(vtable, 4, "vtable")
        vt_size = _U16.unpack_from(self.data, vtable)[0]
        table_size = _U16.unpack_from(self.data, vtable + 2)[0]
        self.need(vtable, vt_size, "vtable")
        self.need(pos, table_size, "table")
        return fb_table.Table(self.data, pos)

    def field(self, tab: fb_table.Table, index: int, size: int) -> int:
        """Absolute position of scalar/offset field ``index``, or 0 when absent."""
        rel = tab.Offset(4 + 2 * index)
        if rel:
            self.need(tab.Pos + rel, size, f"field {index}")
            return tab.Pos + rel
        return 0

    def vector(self, tab: fb_table.Table, index: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of vector field ``index``; (0, 0) when absent."""
        pos = self.field(tab, index, 4)
        if not pos:
            return 0, 0
        vec = pos + _U32.unpack_from(self.data, pos)[0]
        self.need(vec, 4, "vector length")
        length = _U32.unpack_from(self.data, vec)[0]
        self.need(vec + 4, length * elem_size, "vector")
        return vec + 4, length


def read_ioheader(path: str | os.PathLike[str], data: bytes | None = None) -> IOHeader:
    """Check the magic line and decode the IOHeader of an AEDAT 4.0 file."""
    if data is None:
        data = Path(path).read_bytes()
    if data[: len(MAGIC)] != MAGIC:
        raise AedatFormatError(path, 0, f"expected magic {MAGIC!r}, found {data[: len(MAGIC)]!r}")
    pos = len(MAGIC)
    if len(data) < pos + 4:
        raise AedatFormatError(path, pos, "file ends inside the IOHeader length")
    (length,) = _U32.unpack_from(data, pos)
    end = pos + 4 + length
    if end > len(data):
        raise AedatFormatError(path, pos, f"IOHeader declares {length} bytes, {len(data) - pos - 4} remain")
    buf = _Buffer(data[pos + 4 : end], path=path, offset=pos + 4)
    tab = buf.root(0, None)  # writers differ on the "IOHE" identifier; the layout is what matters
    comp_pos = buf.field(tab, 0, 4)
    raw_compression = _I32.unpack_from(buf.data, comp_pos)[0] if comp_pos else 0
    try:
        compression = Compression(raw_compression)
    except ValueError:
        raise buf.fail(f"unknown compression type {raw_compression}") from None
    table_pos = buf.field(tab, 1, 8)
    data_table = struct.unpack_from("<q", buf.data, table_pos)[0] if table_pos else -1
    desc_start, desc_len = buf.vector(tab, 2, 1)
    description = buf.data[desc_start : desc_start + desc_len].decode("utf-8", errors="replace")
    if data_table >= 0 and not end <= data_table <= len(data):
        raise buf.fail(f"dataTablePosition {data_table} lies outside the packet area {end}..{len(data)}")
    return IOHeader(compression=compression, data_table_position=data_table, description=description, end=end)


def aedat4_streams(path: str | os.PathLike[str], header: IOHeader | None = None) -> list[StreamInfo]:
    """Streams declared in the IOHeader's XML description (empty when there is none)."""
    if header is None:
        header = read_ioheader(path)
    if not header.description.strip():
        return []
    try:
        root = ET.fromstring(header.description)
    except ET.ParseError as exc:
        raise AedatFormatError(path, len(MAGIC) + 4, f"IOHeader description is not XML: {exc}") from None
    streams = []
    for out in root.iter("node"):
        if out.get("name") != "outInfo":
            continue
        for node in out.findall("node"):
            attrs = {a.get("key"): (a.text or "") for a in node.findall("attr")}
            info = {a.get("key"): (a.text or "") for n in node.findall("node") for a in n.findall("attr")}
            try:
                streams.append(
                    StreamInfo(
                        stream_id=int(node.get("name", "")),
                        type_identifier=attrs.get("typeIdentifier", ""),
                        width=int(info["sizeX"]) if "sizeX" in info else None,
                        height=int(info["sizeY"]) if "sizeY" in info else None,
                        compression=attrs.get("compression"),
                        source=info.get("source"),
                    )
                )
            except ValueError as exc:
                raise AedatFormatError(path, len(MAGIC) + 4, f"bad stream description: {exc}") from None
    return streams


def _decompress(payload: bytes, compression: Compression) -> bytes:
    if compression == Compression.NONE:
        return payload
    if compression in (Compression.LZ4, Compression.LZ4_HIGH):
        import lz4.frame

        return lz4.frame.decompress(payload)
    import zstandard

    # A streaming decoder copes with frames that do not record their content size.
    return zstandard.ZstdDecompressor().decompressobj().decompress(payload)


def _decode_event_packet(buf: _Buffer) -> np.ndarray | None:
    """Events of a size-prefixed EventPacket, or ``None`` if the buffer is another type."""
    buf.need(0, 12, "size prefix and header")
    (size,) = _U32.unpack_from(buf.data, 0)
    if size + 4 > len(buf.data):
        raise buf.fail(f"size prefix {size} exceeds the {len(buf.data) - 4} bytes that follow it")
    if buf.data[8:12] != EVENTS_IDENTIFIER:
        return None
    tab = buf.root(4, EVENTS_IDENTIFIER)
    start, length = buf.vector(tab, 0, AEDAT4_EVENT.itemsize)
    return np.frombuffer(buf.data, dtype=AEDAT4_EVENT, count=length, offset=start) if length else None


def read_aedat4(path: str | os.PathLike[str], *, stream_id: int | None = None) -> np.ndarray:
    """Read the polarity events of an AEDAT 4.0 file.

    Parameters
    ----------
    path:
        The ``.aedat4`` file.
    stream_id:
        Keep only this stream; ``None`` keeps every event stream.

    Returns
    -------
    numpy.ndarray
        :data:`~golden.data.events.EVENT_DTYPE` events in file order (``p = on``).

    Raises
    ------
    AedatFormatError
        Wrong magic, a bad IOHeader, a truncated packet, a payload that does not
        decompress or a malformed EventPacket.
    """
    data = Path(path).read_bytes()
    header = read_ioheader(path, data)
    stop = header.data_table_position if header.data_table_position >= 0 else len(data)
    # Declared non-event streams (frames, IMU) are skipped without decompressing them;
    # undeclared ones are recognised by their flatbuffer identifier.
    skip = {s.stream_id for s in aedat4_streams(path, header) if s.type_identifier != "EVTS"}
    pos = header.end
    chunks: list[np.ndarray] = []
    while pos < stop:
        if stop - pos < PACKET_HEADER.size:
            raise AedatFormatError(path, pos, f"truncated packet header: {stop - pos} of 8 bytes")
        sid, size = PACKET_HEADER.unpack_from(data, pos)
        body = pos + PACKET_HEADER.size
        if size < 0 or body + size > stop:
            raise AedatFormatError(path, pos, f"truncated packet: declares {size} bytes, {stop - body} left")
        if sid not in skip and (stream_id is None or sid == stream_id):
            try:
                payload = _decompress(data[body : body + size], header.compression)
            except Exception as exc:  # lz4 and zstandard raise their own error types
                raise AedatFormatError(
                    path, body, f"{header.compression.name} payload does not decompress: {exc}"
                ) from None
            events = _decode_event_packet(_Buffer(payload, path=path, offset=body))
            if events is not None:
                chunks.append(events)
        pos = body + size
    out = np.empty(sum(len(c) for c in chunks), dtype=EVENT_DTYPE)
    if chunks:
        raw = np.concatenate(chunks)
        out["t"], out["x"], out["y"] = raw["t"], raw["x"], raw["y"]
        out["p"] = raw["on"] != 0
    return out
