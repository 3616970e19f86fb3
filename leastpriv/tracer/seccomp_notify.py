"""Watching a container's syscalls through seccomp user notification (runc ``listenerPath``).

runc 1.1 installs the container's filter, fetches its notification fd with
pidfd_getfd and hands it to a unix socket named by ``linux.seccomp.listenerPath``.
leastpriv listens there, receives every call the filter sends to userspace
(``SCMP_ACT_NOTIFY``), records it (pid, comm, syscall, arguments) and answers
it: let it run (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``), or fail it with an errno.

Uses: verify's complain mode (every call the enforced profile would deny is
seen, and attributed to the runtime — comm ``runc:[2:INIT]`` before its
execve — or to the workload), and a tracer of last resort for containers
when eBPF is not usable. runc refuses NOTIFY for ``write`` (it needs it to
talk to its parent), so ``write`` is never observed this way.
"""
from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..kernel import syscalls

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
_NOTIF = struct.Struct("=QIIiIQ6Q")     # id, pid, flags, nr, arch, ip, args[6]
_RESP = struct.Struct("=QqiI")          # id, val, error, flags
RUNTIME_COMMS = ("runc:[2:INIT]", "runc:[1:CHILD]", "runc:[0:PARENT]", "runc")


@dataclass(frozen=True)
class Call:
    pid: int
    comm: str
    arch: str
    name: str
    args: tuple[int, ...]

    @property
    def by_runtime(self) -> bool:
        return self.comm in RUNTIME_COMMS


@dataclass
class Observer:
    """A listener socket for runc and the thread answering notifications.

    ``decide(call) -> None | int``: None lets the call run, an errno number fails it.
    """

    path: str
    decide: Callable[[Call], int | None] = lambda c: None
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self._sock.listen(4)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)   # close() wakes the thread's wait through it
        self._thread = threading.Thread(target=self._serve, name="lp-seccomp-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        fds: list[int] = []
        conns = []
        try:
            while not self._stop.is_set():
                watch = [self._sock, self._wake_r] + conns + fds
                r, _, _ = select.select(watch, [], [])    # no period: a wake-up costs the workload a switch
                for obj in r:
                    if obj == self._wake_r:
                        continue
                    if obj is self._sock:
                        conn, _ = self._sock.accept()
                        conns.append(conn)
                    elif isinstance(obj, socket.socket):
                        try:
                            _msg, got, _flags, _addr = socket.recv_fds(obj, 1 << 16, 4)
                        except OSError as exc:
                            self.errors.append(f"listener: {exc}")
                            got = []
                        fds.extend(got)
                        conns.remove(obj)
                        obj.close()
                    else:
                        if not self._handle(obj):
                            fds.remove(obj)
                            os.close(obj)
        finally:
            for fd in fds:
                os.close(fd)
            for c in conns:
                c.close()

    def _handle(self, fd: int) -> bool:
        buf = bytearray(_NOTIF.size)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        except OSError as exc:
            # ENOENT: the task died before we read it; EBADF/EINVAL... : the filter is gone
            import errno
            return exc.errno in (errno.ENOENT, errno.EINTR)
        nid, pid, _flags, nr, audit_arch, _ip, *args = _NOTIF.unpack(buf)
        try:
            arch, nr2 = syscalls.from_audit(audit_arch, nr)
        except Exception:  # noqa: BLE001 - unknown ABI: still answer
            arch, nr2 = f"audit:{audit_arch:#x}", nr
        name = syscalls.name(arch, nr2) if not arch.startswith("audit:") else f"#{nr}"
        try:
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            comm = ""
        call = Call(pid, comm, arch, name, tuple(args))
        self.calls.append(call)
        try:
            err = self.decide(call)
        except Exception as exc:  # noqa: BLE001 - never leave a call hanging
            self.errors.append(f"decide: {exc}")
            err = None
        resp = _RESP.pack(nid, 0, -err if err else 0, 0 if err else SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp), True)
        except OSError:
            pass   # the task died meanwhile
        return True

    def close(self) -> None:
        self._stop.set()
        if self._wake_w < 0:
            return      # closed already: its fd numbers may be another file's by now
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
