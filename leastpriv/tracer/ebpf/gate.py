"""The eBPF fast gate (``check --baseline B --backend ebpf -- CMD``): the calls B explains run untouched.

Attaching anything to raw_syscalls puts every task of the machine on the syscall slow path and runs the
program at each of their calls: 1.45x on a ``dd bs=1`` storm here before the program does any work, so a
bitmap of known calls tested in such a program cannot make a gate cheap. This kernel has no kprobes and
refuses fentry programs, so a program cannot attach to the entry functions of the unexplained syscalls
alone. What it has are the per-syscall trace events (syscalls:sys_enter_<name> / sys_exit_<name>): the
kernel tests the call's number in its bitmap of enabled events before it runs any program. The gate:

* installs in the command, before its exec, a seccomp filter that ALLOWs the syscalls B explains
  (:func:`.program.known_bitmap`: in B, no tracked argument, no path, not an exec) and those whose events
  are attached from the start (:data:`UPFRONT`), and sends every other call -- unexplained syscalls, other
  ABIs (i386, x32), numbers without a syscall -- to a listener leastpriv holds (SECCOMP_RET_USER_NOTIF);
* when the listener first hears of an unexplained syscall, attaches the per-call programs (ebpf.c:
  lp_gate_enter/lp_gate_exit, the full trace's bodies) to its two events while the call waits, so that they
  see that very call and every later one, then lets the call go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE);
* records itself the calls no event shows (other ABIs, numbers this kernel does not implement): the syscall
  and its tracked argument values, from the notification (no paths, no results).

Events are attached on first use, not all at the start, because each one's detach waits for RCU grace
periods, one at a time in the kernel (~40 ms here): all ~360 pairs would add ~30 s to every run's end. A
call of an explained syscall costs the filter and the events' bitmap test; an unexplained one also a round
trip to the listener (as a ptrace stop under ptrace's gate).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import threading
from typing import Callable

from ...kernel import syscalls
from ..base import Known
from ..ptrace_abi import filter_from_bytes
from ..seccomp_notify import (_NOTIF, _RESP, SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND,
                              SECCOMP_USER_NOTIF_FLAG_CONTINUE)
from . import program

# attached before the command runs: the launcher's own calls between installing the filter and its exec
# (it hands the listener over with sendmsg) must not wait for a listener nobody holds yet; an event attached
# before a call begins is also what lets the kernel run the programs for a syscall whose events the listener
# attaches while that call waits (the entry code reads the task's syscall-work flags once, before seccomp);
# and the calls every dynamically linked program makes at start, which no baseline explains (paths, tracked
# arguments, sockets), skip a round trip to the listener each
UPFRONT = ("execve", "sendmsg", "openat", "close", "mmap", "mprotect")
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
NR_SECCOMP = {"x86_64": 317, "aarch64": 277}
SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104      # _IOW('!', 4, __u64)
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1
HANDOVER_SECONDS = 10       # the launcher sends the listener at once; more means it is stuck


def usable(prog: program.Program) -> bool:
    return prog.have_gate and syscalls.host_arch() in NR_SECCOMP


class Gate:
    """The filter, the listener's thread and the events attached so far, for one traced command."""

    def __init__(self, prog: program.Program, known: Known):
        from bcc import BPF

        self.prog = prog
        self.arch = arch = syscalls.host_arch()
        native = next(abi for abi, a in prog.archs.items() if a == arch)
        words, self.n_explained = program.known_bitmap({native: arch}, known)
        self.explained = {name for name, nr in syscalls.table(arch).items()
                          if 0 <= nr < program.SLOTS and words[(native * program.SLOTS + nr) >> 6]
                          >> ((native * program.SLOTS + nr) & 63) & 1}
        self.events = program.syscall_events(prog.tracefs, arch)
        walker = prog.bpf.load_func(b"lp_walk_gate", BPF.TRACEPOINT)
        gw = prog.bpf[b"gate_walkers"]
        gw[ctypes.c_int(0)] = ctypes.c_int(walker.fd)
        self.attached: list[str] = []
        self.upfront = [n for n in UPFRONT if n not in self.explained and n in self.events]
        for name in self.upfront:
            self.attach(name)
        self.filter = _build_filter(arch, self.explained | set(self.upfront))
        # calls no event shows: (arch, name, values or None, exe) -> count
        self.unseen: dict[tuple[str, str, tuple[int, ...] | None, str], int] = {}
        self.errors: list[str] = []
        self.notifications = 0
        self._watched: set[tuple[int, int]] = set()     # (audit arch, nr) whose events are attached
        self._fd = -1
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)   # stop() wakes the thread's wait through it
        self._thread: threading.Thread | None = None

    def attach(self, name: str) -> None:
        if name in self.attached:
            return
        ev = self.events[name]
        self.prog.bpf.attach_tracepoint(tp=f"syscalls:sys_enter_{ev}".encode(), fn_name=b"lp_gate_enter")
        self.prog.bpf.attach_tracepoint(tp=f"syscalls:sys_exit_{ev}".encode(), fn_name=b"lp_gate_exit")
        self.attached.append(name)

    # -- the launcher's side (after fork, before exec) ---------------------------------------------
    def install_and_send(self, sock: socket.socket) -> None:   # pragma: no cover - runs in the forked child
        """Install the filter in this (child) process and hand its listener to the parent. Raises OSError."""
        prog, _keep = filter_from_bytes(self.filter)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.syscall(NR_SECCOMP[self.arch], SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                          ctypes.byref(prog))
        if fd < 0:
            en = ctypes.get_errno()
            raise OSError(en, f"cannot install the fast gate's seccomp filter: {os.strerror(en)}")
        socket.send_fds(sock, [b"L"], [fd])
        os.close(fd)

    # -- leastpriv's side ---------------------------------------------------------------------------
    def receive(self, sock: socket.socket) -> bool:
        """Take the listener the launcher sent; False when it sent none (it failed, and says why itself)."""
        if not select.select([sock], [], [], HANDOVER_SECONDS)[0]:
            return False
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
        except OSError:
            return False
        if not fds:
            return False
        self._fd = fds[0]
        self._thread = threading.Thread(target=self._serve, name="lp-ebpf-gate", daemon=True)
        self._thread.start()
        return True

    def _serve(self) -> None:
        try:   # the waiting task and this thread hand the CPU to each other (Linux 6.6; else no matter)
            fcntl.ioctl(self._fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError:
            pass
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():    # no timeout: a wake-up would be a context switch the workload pays
            try:
                ready = poller.poll()
            except (OSError, ValueError):
                return
            ev = next((ev for fd, ev in ready if fd == self._fd), 0)
            if ev & select.POLLIN:
                if not self._answer():
                    return
            elif ev:
                return    # POLLHUP: no task uses the filter any more

    def _answer(self) -> bool:
        buf = bytearray(_NOTIF.size)
        try:
            fcntl.ioctl(self._fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        except OSError as exc:   # ENOENT: the task died before we read it; else the filter is gone
            return exc.errno in (errno.ENOENT, errno.EINTR)
        nid, pid, _flags, nr, audit_arch, _ip, *args = _NOTIF.unpack(buf)
        self.notifications += 1
        if (audit_arch, nr) not in self._watched:   # (a watched syscall: its programs see it; nothing to do)
            self._first_sight(pid, nr, audit_arch, args)
        try:
            fcntl.ioctl(self._fd, SECCOMP_IOCTL_NOTIF_SEND,
                        bytearray(_RESP.pack(nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)), True)
        except OSError:
            pass   # the task died meanwhile
        return True

    def _first_sight(self, pid: int, nr: int, audit_arch: int, args: list[int]) -> None:
        try:
            arch, nr2 = syscalls.from_audit(audit_arch, nr)
            name = syscalls.name(arch, nr2) if not arch.startswith("audit:") else f"#{nr}"
            if arch == self.arch and name in self.events:
                self.attach(name)      # before the call goes on: the programs see it
                self._watched.add((audit_arch, nr))
            else:
                spec = syscalls.tracked_args(arch, name) if not name.startswith("#") else None
                vals = None if spec is None or name == "clone3" else tuple(args[i] for i in spec.indexes)
                try:
                    exe = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    exe = ""
                key = (arch, name, vals, exe)
                self.unseen[key] = self.unseen.get(key, 0) + 1
        except Exception as exc:  # noqa: BLE001 - never leave a call waiting
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop answering (the traced processes have ended) and close the listener: a call of a process
        still running after this fails with ENOSYS, as under ptrace's gate once the tracer is gone."""
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._wake_w >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def record(self, builder, note: Callable[[str], None]) -> None:
        """The calls only the listener saw, and what the gate did, into the Recording."""
        n_unseen = 0
        for (arch, name, vals, exe), n in sorted(self.unseen.items(), key=str):
            builder.syscall(arch, name, n)
            if vals is not None:
                builder.arg(arch, name, vals, n)
            if exe:
                builder.attribute(exe, arch, name)
            n_unseen += n
        note(f"fast gate: the {self.n_explained} {self.arch} syscalls the baseline explains ran untouched (a seccomp "
             f"filter allowed them; no BPF program ran for them), so they were not counted, nor attributed to "
             f"executables, nor their results sampled")
        later = [n for n in self.attached if n not in self.upfront]
        note(f"fast gate: BPF programs watched the syscall events of {', '.join(self.upfront) or 'no syscall'} "
             f"from the start and of the {len(later)} other syscalls the workload made from their first call"
             f"{' (' + ', '.join(later) + ')' if later else ''}")
        if n_unseen:
            note(f"fast gate: {n_unseen} calls that no syscall event shows (other ABIs than {self.arch}, numbers this "
                 f"kernel does not implement) were recorded from seccomp notifications: syscall and argument "
                 f"values only, not their paths or results")
        for e in self.errors[:3]:
            note(f"fast gate: listener error: {e}")


def _build_filter(arch: str, allowed: set[str]) -> bytes:
    """ALLOW ``allowed``, SECCOMP_RET_USER_NOTIF for every other call (other ABIs too): classic BPF bytes."""
    import tempfile

    import pyseccomp

    f = pyseccomp.SyscallFilter(pyseccomp.NOTIFY)
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.NOTIFY)
    f.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    for name in sorted(allowed):
        if syscalls.exists(arch, name):
            f.add_rule(pyseccomp.ALLOW, name)
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        return tmp.read()
