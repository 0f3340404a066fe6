"""Which container a replication stream is sent in (replication.md 5), as a pure decision over the transport
that carried the request, the response version and the server key:

* HDL-TCP, response version >= 2.8: "TLS\\0" and TLS on the same socket;
* HDL-TCP before 2.8, and plain HTTP: PK-signed segments;
* HTTPS (a tunnelled request on a TLS connection): unsigned (-1) when the server key is not DSA, because
  the client pinned that key in the TLS handshake (Java's NativeServlet and HandleResolver); PK-signed
  with a DSA key, whose TLS certificate Java accepts unpinned;
* UDP: no stream at all.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa

from hdlserver.auth import keys
from hdlserver.core.context import TRANSPORT_HTTP, TRANSPORT_HTTPS, TRANSPORT_TCP
from hdlserver.errors import ProtocolError
from hdlserver.replication.streams import SegmentSigner, StreamMode
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import version_at_least

TLS_STREAM_VERSION = (2, 8)  # HDL-TCP responses from this version on carry the stream over TLS
NOT_OVER_UDP = "Replication streams are served over HDL-TCP, HTTP and HTTPS only"


def stream_signer(transport: str, version: tuple[int, int], private_key: keys.PrivateKey) -> SegmentSigner:
    """The signer for a stream answering a request that came over ``transport``, answered with ``version``."""
    if transport == TRANSPORT_TCP:
        mode = StreamMode.TLS if version_at_least(version, TLS_STREAM_VERSION) else StreamMode.PK
        return SegmentSigner(mode, private_key)
    if transport == TRANSPORT_HTTPS and not isinstance(private_key, dsa.DSAPrivateKey):
        return SegmentSigner(StreamMode.UNSIGNED, None)
    if transport in (TRANSPORT_HTTP, TRANSPORT_HTTPS):
        return SegmentSigner(StreamMode.PK, private_key)
    raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NOT_OVER_UDP)
