"""Wire format between :mod:`host.backends.cocotb_backend` and :mod:`host.backends.sim_server`.

Every message is a 4-byte big-endian length followed by a JSON object; stream words
travel as base64 of little-endian ``uint64``. Standard library and numpy only, so the
host side never imports cocotb.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
from typing import Any

import numpy as np

__all__ = ["SOCKET_ENV", "PERIOD_ENV", "encode_words", "decode_words", "send_message", "recv_message"]

#: Environment variable with the Unix socket path the backend listens on.
SOCKET_ENV = "HOST_SIM_SOCKET"
#: Environment variable with the clock period in picoseconds.
PERIOD_ENV = "HOST_SIM_PERIOD_PS"

_HEADER = struct.Struct(">I")


def encode_words(words: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(words, dtype="<u8").tobytes()).decode("ascii")


def decode_words(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """The next message, or ``None`` when the peer closed the connection."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)
