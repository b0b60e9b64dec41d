"""AEDAT 2.0 / 3.1 / 4.0 readers: exact round trips, hand-built files, the `aedat`
package and iniVation's dv-processing as independent AEDAT 4.0 decoders (and
dv-processing as an independent writer), and typed errors for bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import dv_processing as dv
import flatbuffers
import numpy as np
import pytest

from golden.data.aedat import AEDAT3_PACKET_HEADER, aedat_version, read_aedat, read_aedat2, read_aedat3
from golden.data.aedat4 import PACKET_HEADER, Compression, aedat4_streams, read_aedat4, read_ioheader
from golden.data.aedat_write import write_aedat2, write_aedat3, write_aedat4
from golden.data.errors import AedatFormatError
from golden.data.events import EVENT_DTYPE, make_events

AEDAT3_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"


def random_events(seed: int, n: int, *, t_max: int, side: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, t_max, n)),
        rng.integers(0, side, n),
        rng.integers(0, side, n),
        rng.integers(0, 2, n),
    )


def packet_offsets(data: bytes, start: int, header: struct.Struct, size_of) -> list[int]:
    """Offsets of consecutive packets, walked from the declared sizes (test-side parser)."""
    offsets, pos = [], start
    while pos < len(data):
        offsets.append(pos)
        pos += header.size + size_of(header.unpack_from(data, pos))
    return offsets


# ---------------------------------------------------------------- AEDAT 2.0


def test_aedat2_round_trip(tmp_path: Path) -> None:
    events = random_events(0, 5000, t_max=2**32)
    path = tmp_path / "a.aedat"
    write_aedat2(path, events)
    assert aedat_version(path) == "2.0"
    np.testing.assert_array_equal(read_aedat2(path), events)
    np.testing.assert_array_equal(read_aedat(path), events)


def test_aedat2_decodes_hand_built_dvs128_address(tmp_path: Path) -> None:
    # x=3, y=5, ON: address (5 << 8) | (3 << 1) | 1 = 0x0507; big-endian words.
    path = tmp_path / "hand.aedat"
    path.write_bytes(b"#!AER-DAT2.0\r\n# comment\r\n" + bytes.fromhex("00000507000003e800007f00ffffffff"))
    events = read_aedat2(path)
    assert events.dtype == EVENT_DTYPE
    assert events.tolist() == [(1000, 3, 5, 1), (2**32 - 1, 0, 127, 0)]


def test_aedat2_trailing_partial_event(tmp_path: Path) -> None:
    path = tmp_path / "cut.aedat"
    write_aedat2(path, random_events(1, 10, t_max=1000))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\x00\x01\x02")
    with pytest.raises(AedatFormatError) as err:
        read_aedat2(path)
    assert err.value.offset == size and str(path) in str(err.value) and "truncated" in str(err.value)


# ---------------------------------------------------------------- AEDAT 3.1


def test_aedat3_round_trip_with_overflow_and_many_packets(tmp_path: Path) -> None:
    events = random_events(2, 20_000, t_max=2**34)  # crosses the 31-bit overflow several times
    path = tmp_path / "a.aedat"
    write_aedat3(path, events, packet_size=777)
    assert aedat_version(path) == "3.1"
    np.testing.assert_array_equal(read_aedat3(path), events)
    np.testing.assert_array_equal(read_aedat(path), events)


def test_aedat3_valid_bit(tmp_path: Path) -> None:
    events = random_events(3, 1000, t_max=10**6)
    valid = np.random.default_rng(0).random(1000) > 0.3
    path = tmp_path / "v.aedat"
    write_aedat3(path, events, valid=valid)
    np.testing.assert_array_equal(read_aedat3(path), events[valid])
    np.testing.assert_array_equal(read_aedat3(path, valid_only=False), events)


def test_aedat3_decodes_hand_built_packets(tmp_path: Path) -> None:
    # A 16-byte-event packet of another type (must be skipped), then a polarity packet
    # with tsOverflow 1 and capacity 3 but eventNumber 2 (the spare slot is ignored).
    other = AEDAT3_PACKET_HEADER.pack(2, 1, 16, 12, 0, 1, 1, 1) + bytes(range(16))
    word_a = (100 << 17) | (7 << 2) | (1 << 1) | 1  # x=100, y=7, ON, valid
    word_b = (0 << 17) | (127 << 2) | (0 << 1) | 1  # x=0, y=127, OFF, valid
    polarity = AEDAT3_PACKET_HEADER.pack(1, 1, 8, 4, 1, 3, 2, 2) + struct.pack(
        "<IiIiIi", word_a, 5, word_b, 2**31 - 1, 0xFFFFFFFF, -1
    )
    path = tmp_path / "hand.aedat"
    path.write_bytes(AEDAT3_HEADER + other + polarity)
    assert read_aedat3(path).tolist() == [(2**31 + 5, 100, 7, 1), (2**32 - 1, 0, 127, 0)]


def test_aedat3_truncated_packet_names_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "t.aedat"
    write_aedat3(path, random_events(4, 250, t_max=10**6), packet_size=100)
    data = path.read_bytes()
    start = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    offsets = packet_offsets(data, start, AEDAT3_PACKET_HEADER, lambda h: h[2] * h[5])
    assert len(offsets) == 4  # special-event packet + 100 + 100 + 50 events
    path.write_bytes(data[:-10])
    with pytest.raises(AedatFormatError) as err:
        read_aedat3(path)
    assert err.value.offset == offsets[-1] and "truncated packet" in err.value.reason
    path.write_bytes(data[: offsets[1] + 20])
    with pytest.raises(AedatFormatError) as err:
        read_aedat3(path)
    assert err.value.offset == offsets[1] and "packet header" in err.value.reason


def test_aedat3_header_errors(tmp_path: Path) -> None:
    path = tmp_path / "h.aedat"
    path.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    with pytest.raises(AedatFormatError, match="END-HEADER") as err:
        read_aedat3(path)
    assert str(path) in str(err.value)
    path.write_bytes(b"#!AER-DAT3.1\r\n#ok\r\nnot a comment\r\n#!END-HEADER\r\n")
    with pytest.raises(AedatFormatError) as err:
        read_aedat3(path)
    assert err.value.offset == len(b"#!AER-DAT3.1\r\n#ok\r\n")


def test_aedat3_wrong_polarity_event_size(tmp_path: Path) -> None:
    path = tmp_path / "s.aedat"
    path.write_bytes(AEDAT3_HEADER + AEDAT3_PACKET_HEADER.pack(1, 1, 12, 4, 0, 1, 1, 1) + bytes(12))
    with pytest.raises(AedatFormatError, match="eventSize 12") as err:
        read_aedat3(path)
    assert err.value.offset == len(AEDAT3_HEADER)


@pytest.mark.parametrize(
    ("writer", "reader"),
    [(write_aedat2, read_aedat3), (write_aedat3, read_aedat2), (write_aedat2, read_aedat4)],
)
def test_wrong_version_is_rejected_at_offset_zero(tmp_path: Path, writer, reader) -> None:
    path = tmp_path / "x.aedat"
    writer(path, random_events(5, 10, t_max=1000))
    with pytest.raises(AedatFormatError) as err:
        reader(path)
    assert err.value.offset == 0 and err.value.path == str(path)


def test_not_an_aedat_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(AedatFormatError, match="not an AEDAT") as err:
        read_aedat(path)
    assert err.value.offset == 0


# ---------------------------------------------------------------- AEDAT 4.0


@pytest.mark.parametrize("compression", list(Compression), ids=lambda c: c.name.lower())
def test_aedat4_round_trip_and_aedat_package_agree(tmp_path: Path, compression: Compression) -> None:
    aedat = pytest.importorskip("aedat")
    events = random_events(6, 9000, t_max=2**40, side=128)
    path = tmp_path / "a.aedat4"
    write_aedat4(path, events, compression=compression, packet_size=2500)
    assert aedat_version(path) == "4.0"
    ours = read_aedat4(path)
    np.testing.assert_array_equal(ours, events)
    np.testing.assert_array_equal(read_aedat(path), events)
    decoder = aedat.Decoder(path)
    assert decoder.id_to_stream() == {0: {"type": "events", "width": 128, "height": 128}}
    theirs = np.concatenate([packet["events"] for packet in decoder])
    np.testing.assert_array_equal(theirs["t"].astype(np.int64), ours["t"])
    np.testing.assert_array_equal(theirs["x"].astype(np.int64), ours["x"])
    np.testing.assert_array_equal(theirs["y"].astype(np.int64), ours["y"])
    np.testing.assert_array_equal(theirs["on"].astype(np.uint8), ours["p"])


def test_aedat4_header_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "s.aedat4"
    write_aedat4(path, random_events(7, 10, t_max=100, side=32), compression="zstd", width=40, height=32)
    header = read_ioheader(path)
    assert header.compression == Compression.ZSTD and header.data_table_position == -1
    (stream,) = aedat4_streams(path)
    assert (stream.stream_id, stream.type_identifier, stream.width, stream.height) == (0, "EVTS", 40, 32)
    # The stream's own compression attribute must agree with the IOHeader's.
    assert (stream.compression, stream.source) == ("ZSTD", "golden.data")


def _dv_read(path: Path) -> tuple[np.ndarray, tuple[int, int], str]:
    """Events, resolution and camera name as iniVation's dv-processing reads them."""
    recording = dv.io.MonoCameraRecording(str(path))
    chunks = []
    while (batch := recording.getNextEventBatch()) is not None:
        chunks.append(batch.numpy())
    raw = np.concatenate(chunks)
    events = make_events(raw["timestamp"], raw["x"], raw["y"], raw["polarity"])
    return events, tuple(recording.getEventResolution()), recording.getCameraName()


def _dv_write(path: Path, events: np.ndarray, *, compression: Compression, size: tuple[int, int]) -> None:
    """Write ``events`` with dv-processing's MonoCameraWriter, one packet per 1000 events."""
    config = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", size, dv.CompressionType(compression))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for lo in range(0, len(events), 1000):
        store = dv.EventStore()
        for t, x, y, p in events[lo : lo + 1000].tolist():
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    del writer  # the destructor flushes the writer thread and appends the data table


@pytest.mark.parametrize("compression", list(Compression), ids=lambda c: c.name.lower())
def test_aedat4_written_here_is_read_by_dv_processing(tmp_path: Path, compression: Compression) -> None:
    events = random_events(12, 7000, t_max=2**40, side=100)
    path = tmp_path / "ours.aedat4"
    write_aedat4(path, events, compression=compression, width=120, height=100, packet_size=1500)
    theirs, size, camera = _dv_read(path)
    np.testing.assert_array_equal(theirs, events)
    assert size == (120, 100) and camera == "golden.data"


@pytest.mark.parametrize("compression", list(Compression), ids=lambda c: c.name.lower())
def test_aedat4_written_by_dv_processing_is_read_here(tmp_path: Path, compression: Compression) -> None:
    events = random_events(13, 4500, t_max=2**40, side=100)
    path = tmp_path / "theirs.aedat4"
    _dv_write(path, events, compression=compression, size=(120, 100))
    header = read_ioheader(path)
    assert header.compression == compression and header.data_table_position > header.end
    packets = path.read_bytes()[: header.data_table_position]
    assert len(packet_offsets(packets, header.end, PACKET_HEADER, lambda h: h[1])) == 5
    (stream,) = aedat4_streams(path)
    assert (stream.type_identifier, stream.width, stream.height) == ("EVTS", 120, 100)
    assert (stream.compression, stream.source) == (compression.name, "DVXplorer_test")
    np.testing.assert_array_equal(read_aedat4(path), events)
    np.testing.assert_array_equal(read_aedat(path), events)


def _foreign_packet(identifier: bytes) -> bytes:
    builder = flatbuffers.Builder(64)
    builder.StartObject(1)
    builder.PrependInt64Slot(0, 42, 0)
    builder.FinishSizePrefixed(builder.EndObject(), file_identifier=identifier)
    payload = bytes(builder.Output())
    return PACKET_HEADER.pack(1, len(payload)) + payload


def test_aedat4_skips_other_packet_types(tmp_path: Path) -> None:
    events = random_events(8, 300, t_max=10**6)
    path = tmp_path / "m.aedat4"
    write_aedat4(path, events, compression="none", packet_size=100)
    data = path.read_bytes()
    first = read_ioheader(path).end
    path.write_bytes(data[:first] + _foreign_packet(b"IMUS") + data[first:] + _foreign_packet(b"TRIG"))
    np.testing.assert_array_equal(read_aedat4(path), events)
    assert len(read_aedat4(path, stream_id=1)) == 0


def _aedat4_packets(path: Path) -> list[int]:
    data = path.read_bytes()
    return packet_offsets(data, read_ioheader(path).end, PACKET_HEADER, lambda h: h[1])


def test_aedat4_truncated_packet(tmp_path: Path) -> None:
    path = tmp_path / "t.aedat4"
    write_aedat4(path, random_events(9, 1000, t_max=10**6), packet_size=300)
    offsets = _aedat4_packets(path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(AedatFormatError, match="truncated packet") as err:
        read_aedat4(path)
    assert err.value.offset == offsets[-1]


def test_aedat4_payload_that_does_not_decompress(tmp_path: Path) -> None:
    path = tmp_path / "z.aedat4"
    write_aedat4(path, random_events(10, 1000, t_max=10**6), compression="lz4", packet_size=400)
    offsets = _aedat4_packets(path)
    data = bytearray(path.read_bytes())
    body = offsets[1] + PACKET_HEADER.size
    data[body : body + 8] = b"garbage!"  # destroys the LZ4 frame magic
    path.write_bytes(bytes(data))
    with pytest.raises(AedatFormatError, match="does not decompress") as err:
        read_aedat4(path)
    assert err.value.offset == body


def test_aedat4_malformed_event_vector(tmp_path: Path) -> None:
    path = tmp_path / "v.aedat4"
    events = random_events(11, 10, t_max=10**6)
    write_aedat4(path, events, compression="none")
    (offset,) = _aedat4_packets(path)
    data = bytearray(path.read_bytes())
    body = offset + PACKET_HEADER.size
    # The vector length is the u32 just before the first packed event; make it huge.
    first = struct.pack(
        "<qhh?", int(events["t"][0]), int(events["x"][0]), int(events["y"][0]), bool(events["p"][0])
    )
    length_pos = bytes(data).index(first, body) - 4
    assert struct.unpack_from("<I", data, length_pos) == (10,)
    data[length_pos : length_pos + 4] = struct.pack("<I", 10**6)
    path.write_bytes(bytes(data))
    with pytest.raises(AedatFormatError, match="outside") as err:
        read_aedat4(path)
    assert err.value.offset == body


def test_aedat4_wrong_magic_and_short_header(tmp_path: Path) -> None:
    path = tmp_path / "w.aedat4"
    path.write_bytes(b"#!AER-DAT4.1\r\n" + bytes(8))
    with pytest.raises(AedatFormatError, match="magic") as err:
        read_aedat4(path)
    assert err.value.offset == 0
    path.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<I", 500) + bytes(20))
    with pytest.raises(AedatFormatError, match="IOHeader declares 500") as err:
        read_aedat4(path)
    assert err.value.offset == 14


def test_writers_reject_out_of_range_events(tmp_path: Path) -> None:
    events = make_events([0], [128], [0], [1])
    with pytest.raises(ValueError, match="x must lie in"):
        write_aedat2(tmp_path / "a.aedat", events)
    with pytest.raises(ValueError, match="x must lie in"):
        write_aedat4(tmp_path / "a.aedat4", events, width=128)
    with pytest.raises(ValueError, match="compression"):
        write_aedat4(tmp_path / "a.aedat4", make_events([0], [0], [0], [1]), compression="gzip")
    with pytest.raises(TypeError, match="dtype"):
        write_aedat3(tmp_path / "a.aedat", np.zeros(3))
    with pytest.raises(ValueError, match="source"):
        write_aedat4(tmp_path / "a.aedat4", make_events([0], [0], [0], [1]), source="")
