"""struct sockaddr (as a tracer copies it from the workload) -> Endpoint, for every backend."""
from __future__ import annotations

import os
import sys
from functools import lru_cache

from ..kernel import constants
from .recording import Endpoint


@lru_cache(maxsize=None)
def _net():
    """The socket constants and inet_ntop, and the tables built from them: imported when the first address is
    read. From _socket, the C module under socket.py: the same numbers (plain ints) and inet_ntop, without
    socket.py's enums and selectors (~2-4 ms, which a ptrace trace paid in its loop at a workload's first
    connect; every tracer start paid them when they were imported up front)."""
    import _socket as socket
    inet = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp", socket.SOCK_RAW: "raw", socket.SOCK_SEQPACKET: "sctp"}
    unix = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram", socket.SOCK_SEQPACKET: "seqpacket"}
    return socket, inet, unix, (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6)


def endpoint(op: str, raw: bytes, sock_type: int | None = None, protocol: int | None = None,
             cwd: str = "") -> Endpoint | None:
    """bind/connect's address as an Endpoint.

    AF_INET/AF_INET6 give address and port, AF_UNIX a path (made absolute
    against ``cwd``) or ``@name`` for the abstract namespace; other families
    are kept by name without an address. ``sock_type``/``protocol`` are the
    socket's (when the tracer knows them) and name the protocol: tcp, udp,
    raw, icmp (ping sockets), or stream/dgram/seqpacket for unix sockets.
    None for an autobind (empty unix address) or a buffer too short to hold a family.
    """
    if len(raw) < 2:
        return None
    socket, _INET_PROTO, _UNIX_PROTO, _ICMP = _net()
    fam = int.from_bytes(raw[:2], sys.byteorder)
    stype = None if sock_type is None else sock_type & 0xF
    if fam in (socket.AF_INET, socket.AF_INET6):
        proto = _INET_PROTO.get(stype, "unknown")
        if stype == socket.SOCK_DGRAM and protocol in _ICMP:
            proto = "icmp"
        port = int.from_bytes(raw[2:4], "big")
        if fam == socket.AF_INET and len(raw) >= 8:
            return Endpoint(op, "AF_INET", socket.inet_ntop(socket.AF_INET, raw[4:8]), port, proto)
        if fam == socket.AF_INET6 and len(raw) >= 24:
            return Endpoint(op, "AF_INET6", socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, proto)
        return None
    if fam == socket.AF_UNIX:
        path = raw[2:]
        if not path:
            return None     # autobind: no address to allow
        if path[0] == 0:
            name = "@" + path[1:].rstrip(b"\0").decode("utf-8", "backslashreplace")
        else:
            name = path.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if not name.startswith("/") and cwd:
                name = os.path.normpath(os.path.join(cwd, name))
        return Endpoint(op, "AF_UNIX", name, None, _UNIX_PROTO.get(stype, "unknown"))
    return Endpoint(op, constants.name_of("socket_family", fam) or str(fam), "", None, "unknown")


def needs_cwd(raw: bytes) -> bool:
    """Whether :func:`endpoint` needs the caller's working directory for this address: a unix socket path
    that is relative (a tracer then looks the cwd up; an IP address or an absolute path never needs it)."""
    return len(raw) > 2 and int.from_bytes(raw[:2], sys.byteorder) == _net()[0].AF_UNIX and raw[2] not in b"\0/"


def record_endpoint(builder, ep: Endpoint) -> None:
    """An endpoint, and for a unix path socket the file it is: bind creates it, connect needs write access."""
    builder.endpoint(ep)
    if ep.family == "AF_UNIX" and ep.address.startswith("/"):
        builder.file(ep.address, "create" if ep.op == "bind" else "write")
