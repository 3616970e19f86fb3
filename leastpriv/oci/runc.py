"""Running runc on this machine.

On a host whose /sys/fs/cgroup is a cgroup v1 (hybrid) tree, runc 1.1 runs a
container only inside a private mount namespace where cgroup2 is mounted on
/sys/fs/cgroup (design.md). Every runc invocation here therefore goes
through ``unshare -m --propagation private`` and a three-line prelude; cgroup2
is one hierarchy, so the container's cgroup is the same directory under the
host's own cgroup2 mount (e.g. /sys/fs/cgroup/unified/leastpriv/ID).

Containers are run with ``runc create`` + ``runc start`` so that a tracer can
attach to the container's cgroup in between; leastpriv makes itself a child
subreaper so that the container's init is reparented to it when ``runc
create`` exits, and its exit status can be waited for.
"""
from __future__ import annotations

import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import launch
from ..errors import UserError
from .bundle import save_config

CGROUP_PARENT = "leastpriv"
PR_SET_CHILD_SUBREAPER = 36
CGROUP2_SUPER_MAGIC = 0x63677270

_PRELUDE = ('for d in /sys/fs/cgroup/*/; do umount -l "$d" 2>/dev/null; done; '
            'umount -l /sys/fs/cgroup 2>/dev/null; '
            'mount -t cgroup2 none /sys/fs/cgroup || exit 125; exec "$@"')


def _statfs_type(path: str) -> int | None:
    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]
    libc = ctypes.CDLL(None, use_errno=True)
    buf = StatFs()
    if libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def cgroup2_mount() -> str | None:
    """Where this process sees the cgroup2 hierarchy (None when it has none)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4].replace("\\040", " ")
    except OSError:
        pass
    return None


def unified_here() -> bool:
    return _statfs_type("/sys/fs/cgroup") == CGROUP2_SUPER_MAGIC


@dataclass(frozen=True)
class RunResult:
    """One container run."""

    id: str
    started: bool                  # runc create and start succeeded (the workload's execve may still fail)
    exit_status: int | None        # the container init's status (128+N for signal N); None if unknown
    runc_error: str                # runc's own error output ("" when none)
    stdout: str
    stderr: str
    duration: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    interrupted: str = ""          # "SIGINT" / "SIGTERM" / "SIGHUP": leastpriv was told to stop; the container was


class Runc:
    """A runc binary, run the way this machine needs."""

    def __init__(self, binary: str | None = None, state_root: str | None = None):
        self.binary = binary or shutil.which("runc") or ""
        if not self.binary:
            raise UserError("runc: not found (install Debian's runc: `make install`)")
        self.state_root = state_root or "/run/leastpriv-runc"
        self.wrap = [] if unified_here() else [shutil.which("unshare") or "unshare", "-m", "--propagation", "private",
                                               "/bin/sh", "-c", _PRELUDE, "leastpriv-runc"]

    @staticmethod
    def usable() -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, "running containers needs root"
        if not shutil.which("runc"):
            return False, "runc is not installed (make install)"
        if cgroup2_mount() is None:
            return False, "no cgroup2 hierarchy mounted"
        return True, ""

    def argv(self, *args: str) -> list[str]:
        return self.wrap + [self.binary, "--root", self.state_root, *args]

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"runc version (\S+)", out)
        return m.group(1) if m else "unknown"

    def short_version(self) -> str:
        m = re.match(r"(\d+\.\d+\.\d+)", self.version())
        return m.group(1) if m else self.version()

    def _cgroup_or_none(self, cid: str) -> str | None:
        try:
            return self.cgroup_path(cid)
        except UserError:
            return None

    def cgroup_path(self, cid: str) -> str:
        mnt = cgroup2_mount()
        if mnt is None:
            raise UserError("no cgroup2 hierarchy mounted: cannot locate the container's cgroup")
        return os.path.join(mnt, CGROUP_PARENT, cid)

    def _call(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def delete(self, cid: str) -> None:
        self._call("delete", "--force", cid, timeout=30)

    def run(self, bundle: str | os.PathLike, conf: dict, on_created: Callable[[str, int], None] | None = None,
            timeout: float | None = 120, cid: str | None = None, ephemeral: bool = False,
            passthrough: bool = False, stdin: bool = False) -> RunResult:
        """Run the container described by ``conf`` with ``bundle``'s rootfs; wait for it to exit.

        ``passthrough``: the container's stdout and stderr are ours (like `docker run`; RunResult's
        stdout/stderr stay empty), else they are captured. ``stdin``: the container reads ours (`-i`),
        else /dev/null.

        ``conf`` is written to a private bundle directory next to ``bundle``'s
        rootfs (the user's config.json is never modified). ``on_created(cgroup,
        pid)`` is called between ``runc create`` and ``runc start``.
        """

        cid = cid or f"lp-{uuid.uuid4().hex[:12]}"
        bundle = Path(bundle).resolve()
        rootfs = conf["root"]["path"]
        rootfs = rootfs if os.path.isabs(rootfs) else str(bundle / rootfs)
        if not os.path.isdir(rootfs):
            raise UserError(f"{bundle}: root.path {rootfs} is not a directory")
        work = Path(tempfile.mkdtemp(prefix=f".{cid}.", dir=bundle.parent))
        os.chmod(work, 0o700)
        if ephemeral:
            # the run gets its own copy of the rootfs, thrown away afterwards: every run starts from the same
            # files (verify's complain and enforce runs must not see each other's). Not overlayfs: its copy-up
            # makes capability checks with the mounter's credentials in the container's tasks, which the eBPF
            # tracer would report as the workload's.
            cp = subprocess.run(["cp", "-a", "--reflink=auto", rootfs, str(work / "rootfs")],
                                capture_output=True, text=True)
            if cp.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise UserError(f"cannot copy {rootfs} for an ephemeral run: {cp.stderr.strip()}")
            rootfs = str(work / "rootfs")
        conf = {**conf, "root": {**conf["root"], "path": rootfs},
                "linux": {**conf.get("linux", {}), "cgroupsPath": f"/{CGROUP_PARENT}/{cid}"}}
        save_config(work, conf)
        out_p, err_p, log_p = work / "stdout", work / "stderr", work / "runc.log"
        _set_subreaper()
        t0 = time.monotonic()
        notes: list[str] = []
        started = False
        status: int | None = None
        runc_err = ""
        pid = -1
        # SIGINT/SIGTERM/SIGHUP while the container exists stop it (below, in _wait) instead of killing
        # leastpriv: the container, its cgroup, runc's state and the bundle copy are removed, and the caller
        # saves what was seen, marked interrupted. Handlers only from the main thread (signal's rule).
        # The other signals leastpriv passes on (launch.FORWARDED: SIGUSR1, SIGWINCH, ...) go to the container's
        # init once it runs, as docker run's sig-proxy does.
        got: list[int] = []
        passon: list[int] = []
        old = {}
        if threading.current_thread() is threading.main_thread():
            for s in launch.FORWARDED:
                stops = s in launch.ENDING
                old[s] = signal.signal(s, (lambda n, _f: got.append(n)) if stops else (lambda n, _f: passon.append(n)))

        def result(ok: bool, err: str) -> RunResult:
            return RunResult(cid, ok, status, err, _read(out_p), _read(err_p), time.monotonic() - t0, tuple(notes),
                             signal.Signals(got[0]).name if got else "")
        try:
            with open(out_p, "wb") as out, open(err_p, "wb") as err:
                if passthrough:
                    sys.stdout.flush()
                    sys.stderr.flush()
                try:
                    create = subprocess.run(self.argv("--log", str(log_p), "create", "--bundle", str(work),
                                                      "--pid-file", str(work / "pid"), cid),
                                            stdin=None if stdin else subprocess.DEVNULL,
                                            stdout=None if passthrough else out, stderr=None if passthrough else err,
                                            timeout=CREATE_TIMEOUT)
                except subprocess.TimeoutExpired:   # subprocess killed runc; its init may be left, spinning
                    _kill_leftovers(self._cgroup_or_none(cid))
                    return result(False, f"runc create did not finish within {CREATE_TIMEOUT} s (stopped; a very "
                                         "large config, e.g. tens of thousands of Env entries?)")
            if create.returncode != 0:
                runc_err = _runc_error(log_p, err_p)
                return result(False, runc_err or f"runc create exited {create.returncode}")
            pid = int((work / "pid").read_text().strip())
            if got:
                return result(False, f"{signal.Signals(got[0]).name} before the container started")
            if on_created is not None:
                on_created(self.cgroup_path(cid), pid)
            if got:
                return result(False, f"{signal.Signals(got[0]).name} before the container started")
            start = self._call("--log", str(log_p), "start", cid, timeout=60)
            if start.returncode != 0:
                runc_err = _runc_error(log_p, None) or start.stderr.strip()
                return result(False, runc_err or f"runc start exited {start.returncode}")
            started = True
            status = _wait(pid, None if timeout is None else timeout - (time.monotonic() - t0), notes, timeout,
                           stop=lambda: bool(got), passon=passon)
            if got:
                notes.append(f"leastpriv got {signal.Signals(got[0]).name}: the container was stopped")
            return result(True, _runc_error(log_p, None))
        except subprocess.TimeoutExpired as exc:
            return result(started, f"runc {exc.cmd[-2] if isinstance(exc.cmd, list) else ''} timed out")
        finally:
            if pid > 0 and status is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            try:
                self.delete(cid)
            except subprocess.TimeoutExpired:
                pass
            _kill_leftovers(self._cgroup_or_none(cid))
            shutil.rmtree(work, ignore_errors=True)
            for s, h in old.items():
                signal.signal(s, h)


CREATE_TIMEOUT = 60


def _kill_leftovers(cgroup: str | None) -> None:
    """Kill what a failed or stopped runc left: every task of the container's cgroup (cgroup.kill) and any
    runc process reparented to leastpriv (the child subreaper), e.g. a `runc init` whose `runc create`
    was killed. Reaps them."""
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        comm = stat_line[stat_line.find("(") + 1:stat_line.rfind(")")]
        ppid = int(stat_line[stat_line.rfind(")") + 2:].split()[1])
        if ppid == me and comm.startswith("runc"):
            try:
                os.kill(int(d), signal.SIGKILL)
                os.waitpid(int(d), 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if cgroup:
        try:
            os.rmdir(cgroup)
        except OSError:
            pass


def _set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _wait(pid: int, timeout: float | None, notes: list[str], asked: float | None = None,
          stop: Callable[[], bool] = lambda: False, passon: list[int] | None = None) -> int | None:
    """The container init's exit status; after ``timeout`` seconds (None: never), or as soon as ``stop()``,
    it is stopped (SIGTERM, then SIGKILL after 2 s: as its pid namespace's init it only gets the signals
    it handles) and the note says so. Signals appended to ``passon`` are sent to it as they come.

    Waits on the init's pidfd and, in the main thread, on signal.set_wakeup_fd (the handlers that fill
    ``passon`` and ``stop()`` write to it), with no period: a wake-up is a context switch the container's
    processes pay for when they share our CPU."""
    deadline = float("inf") if timeout is None else time.monotonic() + max(timeout, 1)
    termed = None
    passon = passon if passon is not None else []
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        old_wakeup: int | None = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    except ValueError:   # not the main thread: no handlers of ours, and a caller's stop() is looked at every 0.1 s
        old_wakeup = None
    try:
        while True:
            while passon:
                try:
                    os.kill(pid, passon.pop(0))
                except ProcessLookupError:
                    pass
            if termed is None and stop():
                os.kill(pid, signal.SIGTERM)
                termed = time.monotonic()
            try:
                got, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # not our child (no subreaper): wait until it is gone (its pidfd is readable then)
                if pidfd is not None:
                    select.select([pidfd], [], [], None if deadline == float("inf") else
                                  max(deadline - time.monotonic(), 0.0))
                else:
                    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                        time.sleep(0.02)
                notes.append("the container's exit status is unknown (its init was not reparented to leastpriv)")
                return None
            if got == pid:
                return os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
            now = time.monotonic()
            if now > deadline and termed is None:
                os.kill(pid, signal.SIGTERM)
                termed = now
                notes.append(f"the container was stopped after {asked if asked is not None else timeout:g} s "
                             "(SIGTERM)")
            elif termed is not None and now > termed + 2:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                notes.append("it ignored SIGTERM and was killed")
                return 128 + signal.SIGKILL
            until = termed + 2.01 if termed is not None else deadline
            wait = None if until == float("inf") else max(until - now, 0.0)
            if pidfd is None or old_wakeup is None:
                wait = 0.1 if wait is None else min(wait, 0.1)
            fds = [wake_r] if pidfd is None else [pidfd, wake_r]
            if wake_r in select.select(fds, [], [], wait)[0]:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
    finally:
        if old_wakeup is not None:
            signal.set_wakeup_fd(old_wakeup)
        for fd in (pidfd, wake_r, wake_w):
            if fd is not None:
                os.close(fd)


def _read(p: Path, limit: int = 1 << 20) -> str:
    try:
        with open(p, "rb") as fh:
            return fh.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _runc_error(log: Path, err: Path | None) -> str:
    """runc's error message from its JSON log (level error), else its stderr."""
    import json

    msgs = []
    for line in _read(log).splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if d.get("level") in ("error", "fatal"):
            msgs.append(d.get("msg", ""))
    if msgs:
        return "; ".join(dict.fromkeys(msgs))
    return _read(err).strip() if err else ""
