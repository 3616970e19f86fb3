"""Name the capability checks a confined command failed (or, with --complain, would fail).

The kernel reports a capability check only to observers of the
``capability:cap_capable`` tracepoint (capability, result; no audit option).
``leastpriv run`` (as root) opens its own ftrace instance
(``/sys/kernel/tracing/instances/leastpriv-run-PID``), follows the command's
process tree there (``set_event_pid`` + ``options/event-fork``), keeps
``cap_capable`` events that matter (enforcing: refused checks; complain:
granted checks of capabilities outside the profile), each with its kernel
stack (a ``stacktrace`` trigger), and ``sched_process_exec``/``fork`` events
to name the executable. After the run the instance is read and removed.

A check is reported only when it is audited (or its audit option cannot be
told): the stack says who asked, with the same rule the eBPF tracer learns
with (:func:`leastpriv.tracer.ebpf.capabilities.classify_check`), so the overcommit probe
(CAP_SYS_ADMIN on every mmap) and other no-audit "could I?" checks are not
called denials.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..kernel import constants

_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+[\d.]+: (?P<ev>[\w<> ]+?): ?(?P<rest>.*)$")
_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _tracefs() -> str | None:
    for d in _TRACEFS:
        if os.path.isdir(os.path.join(d, "events", "capability", "cap_capable")):
            return d
    return None


def unavailable_reason() -> str:
    """'' when capability checks can be watched here, else why not."""
    if os.geteuid() != 0:
        return "capability denials are named only as root (they are seen through ftrace)"
    if _tracefs() is None:
        return ("capability denials are not named: tracefs is not mounted (`mount -t tracefs nodev "
                "/sys/kernel/tracing`, make install does it)")
    return ""


@dataclass
class CapCheck:
    pid: int
    cap: str
    ret: int
    frames: list[str] = field(default_factory=list)


@dataclass
class CapWatch:
    """One ftrace instance following one command."""

    allowed: frozenset[str]
    complain: bool
    path: str = ""

    def start(self, pid: int) -> None:
        tfs = _tracefs()
        if tfs is None:
            return
        _remove_stale(os.path.join(tfs, "instances"))
        self.path = os.path.join(tfs, "instances", f"leastpriv-run-{os.getpid()}-{pid}")
        os.mkdir(self.path, 0o700)
        capv = constants.group("capability")
        if self.complain:
            cond = "ret == 0" + "".join(f" && cap != {capv[c]}" for c in sorted(self.allowed) if c in capv)
        else:
            cond = "ret != 0"
        self._write("options/event-fork", "1")
        self._write("set_event_pid", str(pid))
        self._write("events/capability/cap_capable/filter", cond)
        self._write("events/capability/cap_capable/trigger", f"stacktrace if {cond}")
        for ev in ("capability/cap_capable", "sched/sched_process_exec", "sched/sched_process_fork"):
            self._write(f"events/{ev}/enable", "1")

    def _write(self, rel: str, text: str) -> None:
        with open(os.path.join(self.path, rel), "w") as fh:
            fh.write(text)

    def stop(self, child: int) -> list[tuple[str, str, int, str]]:
        """Read and remove the instance: (capability, executable, count, why) of each reported check."""
        if not self.path:
            return []
        try:
            self._write("tracing_on", "0")
            with open(os.path.join(self.path, "trace"), errors="replace") as fh:
                text = fh.read()
        finally:   # removing the instance disables its events and trigger (faster than one by one)
            try:
                os.rmdir(self.path)
            except OSError:
                pass
            self.path = ""
        return summarize(parse(text, child), self.complain)


def _remove_stale(instances: str) -> None:
    """Instances of leastpriv runs that were killed (SIGKILL leaves no chance to remove them): removed."""
    try:
        names = os.listdir(instances)
    except OSError:
        return
    for name in names:
        m = re.fullmatch(r"leastpriv-run-(\d+)-\d+", name)
        if m and not os.path.exists(f"/proc/{m[1]}"):
            try:
                os.rmdir(os.path.join(instances, name))
            except OSError:
                pass


def parse(text: str, child: int) -> list[tuple[CapCheck, str]]:
    """The cap_capable events of the trace with their stacks, each with the executable of its process.
    The child's events before its first exec are leastpriv's own (setting up the confinement): left out."""
    exe: dict[int, str] = {}
    out: list[tuple[CapCheck, str]] = []
    last: CapCheck | None = None
    capnames = {v: k for k, v in constants.group("capability").items()}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.lstrip().startswith("=>"):
            if last is not None:
                last.frames.append(line.split("=>", 1)[1].strip().split("+")[0])
            continue
        m = _LINE.match(line)
        if not m:
            continue
        pid, ev, rest = int(m["pid"]), m["ev"], m["rest"]
        if ev == "sched_process_exec":
            f = re.search(r"filename=(\S+)", rest)
            if f:
                exe[pid] = os.path.realpath(f[1]) if f[1].startswith("/") else f[1]
        elif ev == "sched_process_fork":
            f = re.search(r"child_pid=(\d+)", rest)
            if f and pid in exe:
                exe[int(f[1])] = exe[pid]
        elif ev == "cap_capable":
            c = re.search(r"cap (\d+), ret (-?\d+)", rest)
            last = None
            if c and pid in exe:
                last = CapCheck(pid, capnames.get(int(c[1]), f"CAP_{c[1]}"), int(c[2]))
                out.append((last, exe[pid]))
    return out


def summarize(checks: list[tuple[CapCheck, str]], complain: bool) -> list[tuple[str, str, int, str]]:
    from ..tracer.ebpf import classify_check

    counts: dict[tuple[str, str], int] = {}
    why: dict[tuple[str, str], str] = {}
    for chk, exe in checks:
        frames = [f for f in chk.frames if not f.startswith(("trace_", "__traceiter", "__bpf_trace", "perf_"))]
        audited, reason = classify_check(frames, chk.cap, "")
        if audited is False:
            continue     # a no-audit probe: the kernel does not count it as a need, nor its refusal as a denial
        k = (chk.cap, exe)
        counts[k] = counts.get(k, 0) + 1
        why.setdefault(k, reason)
    return [(cap, exe, n, why[(cap, exe)]) for (cap, exe), n in sorted(counts.items())]
