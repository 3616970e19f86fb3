"""Which path a notified syscall touches and which Landlock rights it needs; and the ruleset's answer.

``leastpriv run`` has the path syscalls below notified by its seccomp
listener (enforce/seccomp.py ``watch``), reads the path from the caller's
memory while it waits, resolves it as the kernel would (against the cwd or
the dirfd; symlinks followed), and asks :class:`LandlockCheck` which of the
needed rights the ruleset does not grant. Landlock itself enforces (or, with
--complain, is not applied); this only names the denial. It is leastpriv's
reading of the ruleset (rules on the paths as they resolve now), not the
kernel's log: ABI 7's audit records need auditing enabled, which this run does
not switch on for the whole machine.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterable

from .landlock import Ruleset

AT_FDCWD = -100
AT_REMOVEDIR = 0x200
O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
O_CREAT, O_TRUNC, O_DIRECTORY, O_PATH = 0o100, 0o1000, 0o200000, 0o10000000

# syscall -> (index of dirfd or None, index of the path, how to read the needed rights)
WATCH: dict[str, tuple[int | None, int, str]] = {
    "open": (None, 0, "open"), "openat": (0, 1, "openat"), "openat2": (0, 1, "openat2"),
    "creat": (None, 0, "creat"), "execve": (None, 0, "exec"), "execveat": (0, 1, "exec"),
    "mkdir": (None, 0, "mkdir"), "mkdirat": (0, 1, "mkdir"), "unlink": (None, 0, "unlink"),
    "unlinkat": (0, 1, "unlinkat"), "rmdir": (None, 0, "rmdir"), "truncate": (None, 0, "truncate"),
}
# TCP ports (Landlock ABI 4+): the socket fd, the address
NET_WATCH = {"bind": "bind_tcp", "connect": "connect_tcp"}


@dataclass(frozen=True)
class Access:
    path: str                  # absolute, resolved; "tcp:PORT" for a TCP bind/connect
    rights: frozenset[str]     # Landlock rights needed ("read_file", "make_reg", ...)
    on_parent: bool = False    # the rights are checked on the directory that holds path (create/remove)


def _signed(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def net_access_of(name: str, sockaddr: bytes, sock_type: int | None) -> Access | None:
    """A TCP bind/connect's port as an Access (None: not TCP over IPv4/IPv6, or unreadable)."""
    import socket

    if name not in NET_WATCH or sock_type is None or sock_type & 0xF != socket.SOCK_STREAM or len(sockaddr) < 4:
        return None
    fam = int.from_bytes(sockaddr[:2], "little")
    if fam not in (socket.AF_INET, socket.AF_INET6):
        return None
    return Access(f"tcp:{int.from_bytes(sockaddr[2:4], 'big')}", frozenset({NET_WATCH[name]}))


def access_of(name: str, args: list[int], pid: int, read_str: Callable[[int], str | None],
              read_u64: Callable[[int], int | None]) -> Access | None:
    """The path and rights of a watched syscall; None when it needs none (O_PATH) or cannot be read."""
    spec = WATCH.get(name)
    if spec is None:
        return None
    dirfd_i, path_i, how = spec
    raw = read_str(args[path_i])
    if raw is None:
        return None
    base = None
    if not raw.startswith("/"):
        dfd = AT_FDCWD if dirfd_i is None else _signed(args[dirfd_i])
        try:
            base = os.readlink(f"/proc/{pid}/cwd" if dfd == AT_FDCWD else f"/proc/{pid}/fd/{dfd}")
        except OSError:
            return None
    path = os.path.normpath(os.path.join(base, raw) if base else raw)
    flags = 0
    if how in ("open", "openat"):
        flags = args[path_i + 1]
    elif how == "openat2":
        flags = read_u64(args[2]) or 0
    elif how == "creat":
        flags = O_CREAT | O_WRONLY | O_TRUNC
    if how in ("open", "openat", "openat2", "creat"):
        if flags & O_PATH:
            return None
        real = os.path.realpath(path)
        if flags & O_CREAT and not os.path.lexists(real):
            return Access(real, frozenset({"make_reg"}), on_parent=True)
        need = set()
        mode = flags & O_ACCMODE
        try:
            is_dir = stat.S_ISDIR(os.stat(real).st_mode)
        except OSError:
            return None     # it does not exist: ENOENT, not Landlock
        if mode in (0, O_RDWR):
            need.add("read_dir" if is_dir else "read_file")
        if mode in (O_WRONLY, O_RDWR):
            need.add("write_file")
        if flags & O_TRUNC and not is_dir:
            need.add("truncate")
        return Access(real, frozenset(need))
    if how == "exec":
        real = os.path.realpath(path)
        return Access(real, frozenset({"execute"})) if os.path.exists(real) else None
    if how == "truncate":
        return Access(os.path.realpath(path), frozenset({"truncate"}))
    parent = os.path.realpath(os.path.dirname(path) or "/")
    target = os.path.join(parent, os.path.basename(path))
    if how == "mkdir":
        return None if os.path.lexists(target) else Access(target, frozenset({"make_dir"}), on_parent=True)
    if how == "rmdir" or (how == "unlinkat" and args[2] & AT_REMOVEDIR):
        return Access(target, frozenset({"remove_dir"}), on_parent=True)
    if how in ("unlink", "unlinkat"):
        return Access(target, frozenset({"remove_file"}), on_parent=True) if os.path.lexists(target) else None
    return None


class LandlockCheck:
    """The rights a Landlock ruleset grants on a path (rules resolved once, like the kernel's O_PATH fds)."""

    def __init__(self, rs: Ruleset):
        self.handled = frozenset(rs.handled_fs)
        self.handled_net = frozenset(rs.handled_net)
        self.ports = {k: frozenset(v) for k, v in rs.ports.items()}
        self.rules: list[tuple[str, frozenset[str]]] = []
        for r in rs.paths:
            try:
                self.rules.append((os.path.realpath(r.path), frozenset(r.access)))
            except OSError:
                continue

    def granted(self, path: str) -> set[str]:
        """Rights on ``path`` from rules on it or on a directory above it."""
        got: set[str] = set()
        for rp, acc in self.rules:
            if path == rp or path.startswith(rp.rstrip("/") + "/"):
                got |= acc
        return got

    def missing(self, a: Access) -> frozenset[str]:
        if a.path.startswith("tcp:"):
            port = int(a.path[4:])
            return frozenset(r for r in a.rights if r in self.handled_net and port not in self.ports.get(r, ()))
        where = os.path.dirname(a.path) or "/" if a.on_parent else a.path
        need = a.rights & self.handled
        return frozenset(need - self.granted(where)) if need else frozenset()


def names(net: bool = False) -> Iterable[str]:
    return [*WATCH, *(NET_WATCH if net else ())]
