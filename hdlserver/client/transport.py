"""Blocking request/response exchanges over UDP and TCP for the client tools.

UDP follows the Java client: resend after 0.5 s, 1 s and 1.5 s, then give up; multi-datagram answers
are joined by sequence number. TCP reads envelope + message pairs while the answer has more parts (CN).
"""

from __future__ import annotations

import socket
import time

from hdlserver.errors import DecodeError, HandleError
from hdlserver.wire.codes import OpFlag
from hdlserver.wire.envelope import ENVELOPE_SIZE, UDP_MAX_DATAGRAM, UDP_PAYLOAD, decode_envelope, split_for_udp

UDP_WAITS = (0.5, 1.0, 1.5)


class ClientTimeout(HandleError):
    """No answer from the server within the client's patience."""


def udp_exchange(address: tuple[str, int], request: bytes, waits: tuple[float, ...] = UDP_WAITS) -> bytes:
    """Send ``request`` (envelope + message) and return the whole answer (envelope + message)."""
    env = decode_envelope(request)
    datagrams = split_for_udp(env, request[ENVELOPE_SIZE:])
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for wait in waits:
            for datagram in datagrams:
                sock.sendto(datagram, address)
            deadline = time.monotonic() + wait
            answer = _collect_udp_answer(sock, env.request_id, deadline)
            if answer is not None:
                return answer
    raise ClientTimeout(f"no UDP answer from {address[0]}:{address[1]}")


def _collect_udp_answer(sock: socket.socket, request_id: int, deadline: float) -> bytes | None:
    parts: dict[int, bytes] = {}
    first: bytes | None = None
    total = -1
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            datagram = sock.recv(UDP_MAX_DATAGRAM + 64)
        except TimeoutError:
            return None
        try:
            env = decode_envelope(datagram)
        except DecodeError:
            continue
        if env.request_id != request_id:
            continue  # an answer to an earlier request: the Java client ignores it too
        total = env.message_length
        parts[env.sequence] = datagram[ENVELOPE_SIZE:]
        if env.sequence == 0:
            first = datagram[:ENVELOPE_SIZE]
        needed = max(1, -(-total // UDP_PAYLOAD))
        if first is not None and len(parts) >= needed:
            message = b"".join(parts[i] for i in range(needed) if i in parts)
            if len(message) == total:
                return first + message
    return None


def read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_tcp_message(sock: socket.socket) -> bytes:
    head = read_exact(sock, ENVELOPE_SIZE)
    env = decode_envelope(head)
    return head + read_exact(sock, env.message_length)


def tcp_exchange(address: tuple[str, int], request: bytes, timeout: float = 30.0) -> list[bytes]:
    """Send ``request`` on a new connection; return every answer part (envelope + message each)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        answers = []
        while True:
            answer = read_tcp_message(sock)
            answers.append(answer)
            flags = int.from_bytes(answer[ENVELOPE_SIZE + 8 : ENVELOPE_SIZE + 12], "big")
            if not flags & OpFlag.CN:
                return answers
