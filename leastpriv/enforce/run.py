"""``leastpriv run``: start a command confined by a profile, here, without a container.

The parent builds everything that can fail (the filter, the Landlock
ruleset, the capability sets) before it forks. The child then, in this order:
restores default signal handling, drops capabilities, restricts itself with
Landlock, installs the seccomp filter, and calls ``execve``. The filter is
installed last so it does not have to allow the syscalls that set up the
others; the one syscall of leastpriv's own it must allow is ``execve`` (the
"leastpriv" runtime of the seccomp model) -- just as runc's profiles must allow
what runc does after installing the filter.

The parent waits and exits with the child's status (128+N for signal N).
It keeps the child in its own process group, so the terminal's signals
(Ctrl-C, Ctrl-\\, window size) reach the child directly; the signals of
``launch.FORWARDED`` sent to the parent with kill(2) (si_code SI_USER/SI_QUEUE/SI_TKILL) are forwarded.

Naming denials: the filter's denials become SECCOMP_RET_USER_NOTIF. The
parent takes the listener out of the child with pidfd_getfd(2) (the child
waits for it before exec), records the ABI, syscall, tracked argument values
and the caller's executable, and answers EPERM (enforcing) or
SECCOMP_USER_NOTIF_FLAG_CONTINUE (--complain). The path syscalls of
enforce/watch.py are notified too and always continued, after checking the
path against the Landlock ruleset: what Landlock denies (or, with --complain,
would deny) is named the same way. Notifications that arrive before the
child's execve (seen as: the close-on-exec status pipe is still open) are
leastpriv's own and are not reported.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..kernel import constants, syscalls
from .. import launch
from ..launch import resolve_command as _resolve
from ..errors import UserError
from . import capabilities as caps, landlock as ll
from ..policy import libseccomp as sec, seccomp_model as sm
from . import capwatch, watch
from .landlock import ruleset



@dataclass(frozen=True)
class RunOptions:
    complain: bool = False
    log: bool = False        # complain through the kernel log: SCMP_ACT_LOG (audit type 1326), nothing recorded here
    seccomp: bool = True
    landlock: bool = True
    capabilities: bool = True


@dataclass(frozen=True)
class Denial:
    """What the profile denied (or, with --complain, would have denied): a seccomp syscall or a Landlock access."""

    arch: str
    syscall: str
    exe: str
    count: int
    args: tuple[str, ...] = ()    # distinct tracked argument values, described
    kind: str = "seccomp"         # "seccomp" | "landlock" | "capability"
    path: str = ""                # landlock: the path
    access: tuple[str, ...] = ()  # landlock: the rights the ruleset does not grant
    capability: str = ""          # capability: CAP_*

    def to_json(self) -> dict:
        return {"kind": self.kind, "arch": self.arch, "syscall": self.syscall, "exe": self.exe, "count": self.count,
                "args": list(self.args), "path": self.path, "access": list(self.access),
                "capability": self.capability}


@dataclass(frozen=True)
class RunResult:
    status: int
    denials: tuple[Denial, ...] = ()
    notes: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()   # which parts were enforced ("seccomp", "landlock ABI 7", "capabilities")

    def to_json(self) -> dict:
        return {"status": self.status, "denials": [d.to_json() for d in self.denials], "notes": list(self.notes),
                "applied": list(self.applied)}


def resolve_command(argv: tuple[str, ...]) -> str:
    """The executable for argv[0], or a UserError (127 not found, 126 not executable)."""
    if not argv:
        raise UserError("run: no command given (leastpriv run --profile P -- CMD ...)")
    return _resolve(argv[0])


class _Prepared:
    """Everything the child applies, built in the parent where errors can be reported."""

    def __init__(self):
        self.steps: list[Callable[[], None]] = []   # run in the child, in order, before seccomp
        self.filter = None
        self.notes: list[str] = []
        self.applied: list[str] = []
        self.fds: list[int] = []      # closed in the parent once the child is forked
        self.landlock = None          # watch.LandlockCheck: names Landlock's denials
        self.capwatch = None          # capwatch.CapWatch: names refused capability checks


def prepare(profile: Any, options: RunOptions) -> _Prepared:

    prep = _Prepared()
    rules = profile.rules
    # the filter is loaded without no_new_privs only for root when the workload gains privileges
    nnp = os.geteuid() != 0 or rules.no_new_privileges
    if options.complain and options.landlock and options.seccomp:
        abi = ll.kernel_abi()
        if rules.files.all_paths():
            prep.landlock = watch.LandlockCheck(ruleset(profile, abi or 7))
    if options.capabilities and not options.log:
        why_not = capwatch.unavailable_reason()
        if not why_not:
            prep.capwatch = capwatch.CapWatch(frozenset(rules.capabilities), options.complain)
        elif os.geteuid() == 0 or rules.capabilities:
            prep.notes.append(why_not)
    if options.log and (options.landlock or options.capabilities):
        prep.notes.append("--complain-log covers seccomp only: Landlock and capability dropping are not applied")
    if options.complain or options.log:
        options = RunOptions(complain=options.complain, log=options.log, seccomp=options.seccomp, landlock=False,
                             capabilities=False)
    if options.landlock:
        lplan = ll.plan(profile)
        if lplan.fd is not None:
            prep.fds.append(lplan.fd)
            prep.steps.append(lplan.apply)
            prep.applied.append(lplan.label)
            if lplan.rules is not None and options.seccomp:
                prep.landlock = watch.LandlockCheck(lplan.rules)
            elif lplan.rules is not None:
                prep.notes.append("Landlock denials are named through the seccomp listener: not with --no-seccomp")
        prep.notes += lplan.notes
    if options.capabilities:
        cplan = caps.plan(rules.capabilities, keep_sys_admin_until_exec=options.seccomp and not nnp)
        prep.steps.append(cplan.apply)
        prep.notes += cplan.notes
        prep.applied.append("capabilities")
    if options.seccomp:
        if not rules.syscalls and rules.style == "allowlist":
            raise UserError("profile: has no learned syscalls (rules.syscalls is empty): nothing to enforce")
        model = sm.build(profile, complain=options.complain or options.log, runtime="leastpriv")
        if model.style == "allowlist" and not any(r.action == sm.ALLOW and r.names != ("execve",)
                                                  for rs in model.rules.values() for r in rs):
            learned = ", ".join(sorted(rules.syscalls))
            raise UserError(f"profile: it allows no syscall of this {model.native} host (it was learned for "
                            f"{learned}): learn it on this machine to run it here")
        prep.filter = sec.build_filter(model, complain_mode=options.complain, no_new_privs=nnp,
                                       notify_denials=not (options.complain or options.log),
                                       watch=watch.names(bool(prep.landlock.handled_net))
                                       if prep.landlock is not None else ())
        prep.notes += list(model.notes) + sec.describe_skipped(prep.filter.skipped)
        prep.applied.append("seccomp (complain: denials recorded, not enforced)" if options.complain else
                            "seccomp (log: denials logged by the kernel, audit type 1326, not enforced)" if options.log
                            else "seccomp")
    return prep


def _child(path: str, argv: tuple[str, ...], env: dict, prep: _Prepared, status_w: int, go_r: int | None,
           shm: mmap.mmap, parent: int) -> None:
    """In the forked child: never returns.

    A failure is reported on ``status_w`` and, first, as one byte in the shared
    page ``shm`` (errno, or 255): once the filter is loaded the profile may deny
    ``write`` itself, and a store to shared memory needs no syscall.
    """
    try:
        launch.child_setup(parent)
        encoded = launch.encode(path, argv, env)
        for step in prep.steps:
            step()
        if prep.filter is not None:
            prep.filter.load()
        if go_r is not None:
            os.read(go_r, 1)   # complain: the parent has taken the listener
        launch.exec_encoded(encoded)
    except OSError as exc:
        shm[0] = exc.errno if exc.errno and 0 < exc.errno < 255 else 255
        try:
            os.write(status_w, f"exec {exc.errno} {exc.strerror}\n".encode())
        finally:
            os._exit(launch.exit_code_for(exc.errno))
    except BaseException as exc:  # noqa: BLE001 - report anything, never return into the parent's code
        shm[0] = 255
        try:
            os.write(status_w, f"error {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(126)
    os._exit(126)


def _exec_hint(en: int, prep: _Prepared) -> str:
    """Why an execve that works outside ``run`` fails inside it."""
    if en == _errno.EACCES and any(a.startswith("landlock (ABI") for a in prep.applied):
        return " — Landlock allows executing only what the learning runs executed (--no-landlock to try without)"
    return ""


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    nr = syscalls.number(syscalls.host_arch(), "pidfd_getfd")
    res = libc.syscall(ctypes.c_long(nr), ctypes.c_int(pidfd), ctypes.c_int(fd), ctypes.c_uint(0))
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return res


def _find_listener(pid: int, pidfd: int, status_r: int, deadline: float) -> int | None:
    """The child's seccomp listener, copied into this process; None when the child reported
    an error (or ended) before installing its filter."""
    while time.monotonic() < deadline:
        try:
            for name in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{name}") == "anon_inode:seccomp notify":
                        return _pidfd_getfd(pidfd, int(name))
                except (FileNotFoundError, ValueError):
                    continue
        except FileNotFoundError:
            return None
        r, _, _ = select.select([status_r], [], [], 0.002)
        if r:
            return None   # an error report, or EOF: the child is gone
    raise UserError("run --complain: the child's seccomp listener did not appear (pidfd_getfd needs Linux 5.6)",
                    exit_code=126)


class _Complaints:
    def __init__(self):
        self.counts: dict[tuple[str, str, str], int] = {}
        self.args: dict[tuple[str, str, str], set[str]] = {}
        self.paths: dict[tuple[str, str, str, tuple[str, ...], str], int] = {}

    def add(self, arch: str, name: str, exe: str, argv: list[int]) -> None:
        k = (arch, name, exe)
        self.counts[k] = self.counts.get(k, 0) + 1
        spec = syscalls.tracked_args(arch, name)
        if spec is not None:
            vals = [argv[i] for i in spec.indexes]
            desc = ", ".join(f"{n}={d}" for n, d in
                             zip(spec.names, constants.describe_args(spec.groups, vals).split(", ")))
            self.args.setdefault(k, set()).add(desc)

    def add_path(self, arch: str, name: str, exe: str, path: str, access: frozenset[str]) -> None:
        k = (path, exe, name, tuple(sorted(access)), arch)
        self.paths[k] = self.paths.get(k, 0) + 1

    def result(self) -> tuple[Denial, ...]:
        sc = [Denial(a, n, e, c, tuple(sorted(self.args.get((a, n, e), ()))))
              for (a, n, e), c in sorted(self.counts.items())]
        ll = [Denial(a, n, e, c, kind="landlock", path=p, access=acc)
              for (p, e, n, acc, a), c in sorted(self.paths.items())]
        return tuple(sc + ll)


def run(profile: Any, argv: tuple[str, ...], options: RunOptions = RunOptions(),
        env: dict | None = None) -> RunResult:
    """Run ``argv`` confined by ``profile``; return its status and, in complain mode, the denials."""
    path = resolve_command(argv)
    prep = prepare(profile, options)
    listen = prep.filter is not None and prep.filter.notify
    env = dict(os.environ if env is None else env)

    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    go_r = go_w = None
    if listen or prep.capwatch is not None:
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
    shm = mmap.mmap(-1, 1)   # MAP_SHARED|MAP_ANONYMOUS: the child's failure byte (see _child)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, (*launch.FORWARDED, signal.SIGCHLD))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            if go_w is not None:
                os.close(go_w)
            _child(path, argv, env, prep, status_w, go_r, shm, parent)
        os.close(status_w)
        if go_r is not None:
            os.close(go_r)
        if prep.capwatch is not None:
            try:
                prep.capwatch.start(pid)   # before the child may exec (it waits for "go" when listening)
            except OSError as exc:
                prep.notes.append(f"capability denials are not named: ftrace instance: {exc.strerror}")
                prep.capwatch.stop(pid)
                prep.capwatch = None
        if go_w is not None and not listen:
            os.write(go_w, b"g")   # the capability watch is on: the child may exec
            os.close(go_w)
            go_w = None
        for fd in prep.fds:
            os.close(fd)
        result = _supervise(pid, prep, status_r, go_w, listen, shm, options.complain)
        if prep.capwatch is not None:
            caps = tuple(Denial("", "", exe, n, (why,), kind="capability", capability=cap)
                         for cap, exe, n, why in prep.capwatch.stop(pid))
            result = RunResult(result.status, result.denials + caps, result.notes, result.applied)
        return result
    finally:
        if prep.capwatch is not None and prep.capwatch.path:
            prep.capwatch.stop(pid)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        shm.close()


def _supervise(pid: int, prep: _Prepared, status_r: int, go_w: int | None, listen: bool,
               shm: mmap.mmap, complain: bool) -> RunResult:
    complaints = _Complaints()
    listener = None
    pidfd = None
    status_buf = b""
    status_open = True
    exited: int | None = None

    def drain_status(block: bool) -> None:
        nonlocal status_buf, status_open
        while status_open:
            if not block:
                r, _, _ = select.select([status_r], [], [], 0)
                if not r:
                    return
            chunk = os.read(status_r, 4096)
            if not chunk:
                status_open = False
                return
            status_buf += chunk

    if listen:
        pidfd = os.pidfd_open(pid)
        try:
            listener = _find_listener(pid, pidfd, status_r, time.monotonic() + 10)
        except UserError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        if listener is not None:
            os.write(go_w, b"g")
        os.close(go_w)
    else:
        # nothing to answer: wait for exec (EOF) or an error report
        drain_status(block=True)

    host = syscalls.host_arch()
    # Waits without a period (each wake-up is a context switch the confined workload pays for): for the child's
    # end (its pidfd: SIGCHLD may be ignored, and then never sent), a forwarded signal (blocked in run(): one
    # that comes while we are not waiting stays pending) or a call to answer.
    waited = (*launch.FORWARDED, signal.SIGCHLD)
    sigfd = launch.signalfd(waited)
    if pidfd is None:
        pidfd = os.pidfd_open(pid)
    ready = select.poll()
    for fd in (pidfd, sigfd) if listener is None else (pidfd, sigfd, listener):
        ready.register(fd, select.POLLIN)
    while exited is None:
        try:
            events = ready.poll()
        except InterruptedError:
            events = []
        for fd, ev in events:
            if fd != listener:
                continue
            if ev & select.POLLIN:
                _answer(listener, pid, complaints, drain_status, lambda: status_open, host, prep, complain)
            elif ev & (select.POLLHUP | select.POLLERR):
                ready.unregister(listener)
                os.close(listener)   # no task uses the filter any more
                listener = None
        try:
            info = signal.sigtimedwait(waited, 0)
        except InterruptedError:
            info = None
        if info is not None and info.si_signo != signal.SIGCHLD:
            launch.forward(pid, info.si_signo, info.si_code)   # a terminal's (si_code) reached the child already
        try:
            wpid, wstatus = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if wpid == pid:
            exited = launch.status_of(wstatus)
    if listener is not None:
        # answer what is still queued (descendants that outlive the command), then let go
        while True:
            p = select.poll()
            p.register(listener, select.POLLIN)
            ev = p.poll(0)
            if not ev or not ev[0][1] & select.POLLIN:
                break
            _answer(listener, pid, complaints, drain_status, lambda: status_open, host, prep, complain)
        p = select.poll()
        p.register(listener, select.POLLIN)
        ev = p.poll(0)
        if not (ev and ev[0][1] & (select.POLLHUP | select.POLLERR)):
            _hand_over(listener, prep, complain)
            prep.notes.append("processes of the command still run: their denials are enforced after leastpriv "
                              "exits but not named")
        os.close(listener)
    if pidfd is not None:
        os.close(pidfd)
    os.close(sigfd)
    drain_status(block=False)
    os.close(status_r)
    notes = list(prep.notes)
    for line in status_buf.decode(errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "exec":
            en, _, msg = rest.partition(" ")
            raise UserError(f"run: cannot execute the command: {msg} ({_errno.errorcode.get(int(en), en)})"
                            + _exec_hint(int(en) if en.isdigit() else 0, prep),
                            exit_code=exited if exited in (126, 127) else 126)
        if kind == "error":
            raise UserError(f"run: cannot confine the command: {rest}", exit_code=126)
    if shm[0]:   # the child failed but its report was lost: the filter denied write()
        en = shm[0]
        what = (f"{os.strerror(en)} ({_errno.errorcode.get(en, en)})" if en != 255 else "an error in leastpriv's child")
        raise UserError(f"run: cannot execute the command: {what}{_exec_hint(en, prep)}; the profile's filter "
                        "also denied reporting the details (write)", exit_code=exited if exited in (126, 127) else 126)
    return RunResult(exited if exited is not None else 126, complaints.result(), tuple(notes), tuple(prep.applied))


def _hand_over(listener: int, prep: _Prepared, complain: bool) -> None:
    """Processes that outlive the command still use the filter: a detached helper keeps answering its
    notifications (watched calls continue, denials get EPERM, or continue with --complain) until none
    is left, so they never see ENOSYS from a listener nobody reads."""

    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, listener)
        os.closerange(listener + 1, 1 << 16)
        watched = prep.filter.watched if prep.filter is not None else frozenset()
        while True:
            p = select.poll()
            p.register(listener, select.POLLIN)
            ev = p.poll(-1)
            if not ev or ev[0][1] & (select.POLLHUP | select.POLLERR):
                break
            try:
                n = sec.notify_receive(listener)
            except OSError:
                continue
            arch, nr = syscalls.from_audit(n.syscall_arch, n.syscall)
            name = syscalls.name(arch, nr) if arch in syscalls.arches() else f"#{nr}"
            if complain or (arch, name) in watched:
                sec.notify_continue(listener, n.id)
            else:
                sec.notify_error(listener, n.id, _errno.EPERM)
    finally:
        os._exit(0)


def _answer(listener: int, child: int, complaints: _Complaints, drain_status, status_open, host: str,
            prep: _Prepared, complain: bool) -> None:
    """One notification: a watched path syscall (check it against Landlock, continue) or a denial
    (record it; EPERM, or continue with --complain)."""

    try:
        n = sec.notify_receive(listener)
    except OSError:
        return   # the task died before we read it
    deny = False
    try:
        drain_status(block=False)
        if n.pid == child and status_open():
            return   # leastpriv's own, before the command's execve
        arch, nr = syscalls.from_audit(n.syscall_arch, n.syscall)
        name = syscalls.name(arch, nr) if arch in syscalls.arches() else f"#{nr}"
        try:
            exe = os.readlink(f"/proc/{n.pid}/exe")
        except OSError:
            exe = "?"
        if (arch, name) in prep.filter.watched:
            if prep.landlock is not None:
                _check_path(listener, n, arch, name, exe, prep.landlock, complaints)
            return
        complaints.add(arch, name, exe, n.syscall_args)
        deny = not complain
    finally:
        if deny:
            sec.notify_error(listener, n.id, _errno.EPERM)
        else:
            sec.notify_continue(listener, n.id)


def _sock_type(pid: int, fd: int) -> int | None:
    """SO_TYPE of the caller's socket ``fd`` (a copy taken with pidfd_getfd)."""
    import socket

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        mine = _pidfd_getfd(pidfd, fd)
    except OSError:
        return None
    finally:
        os.close(pidfd)
    try:
        with socket.socket(fileno=mine) as s:
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError:
        return None


def _check_path(listener: int, n, arch: str, name: str, exe: str, check, complaints: _Complaints) -> None:

    try:
        fd = os.open(f"/proc/{n.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        def read_str(addr: int) -> str | None:
            out = b""
            while len(out) < 4096:
                try:
                    chunk = os.pread(fd, 256 - (addr + len(out)) % 256, addr + len(out))
                except OSError:
                    return None
                if not chunk:
                    return None
                end = chunk.find(b"\0")
                if end >= 0:
                    return os.fsdecode(out + chunk[:end])
                out += chunk
            return None

        def read_u64(addr: int) -> int | None:
            try:
                b = os.pread(fd, 8, addr)
            except OSError:
                return None
            return int.from_bytes(b, sys.byteorder) if len(b) == 8 else None

        if name in watch.NET_WATCH:
            try:
                raw = os.pread(fd, min(int(n.syscall_args[2]), 128), n.syscall_args[1])
            except (OSError, OverflowError, ValueError):
                raw = b""
            acc = watch.net_access_of(name, raw, _sock_type(n.pid, int(n.syscall_args[0])))
        else:
            acc = watch.access_of(name, list(n.syscall_args), n.pid, read_str, read_u64)
    finally:
        os.close(fd)
    if acc is None or not sec.notify_id_valid(listener, n.id):
        return
    missing = check.missing(acc)
    if missing:
        complaints.add_path(arch, name, exe, acc.path, missing)
