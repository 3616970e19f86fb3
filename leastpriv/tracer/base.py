"""The small interface every tracer backend implements, and what it traces."""
from __future__ import annotations

import os

from abc import ABC, abstractmethod
from collections.abc import Callable

from ..values import Value, field, value
from .recording import Recording


@value
class Command(Value):
    """Start ``argv`` and trace it and everything it creates."""
    argv: tuple[str, ...]


@value
class Pid(Value):
    """Attach to a running process and all its descendants, existing and future."""
    pid: int


@value
class Cgroup(Value):
    """Every process in a cgroup (v2 path, e.g. /sys/fs/cgroup/system.slice/x.service)."""
    path: str


Target = Command | Pid | Cgroup


@value
class Known(Value):
    """What a baseline already explains (``check --baseline``, ``learn --fast``): a backend may let
    these calls run without looking at them (tracer/fastpath.py), since they cannot add a fact.

    syscalls: (arch, name) pairs; args: (arch, name, values) for tracked-argument syscalls.
    """
    syscalls: frozenset[tuple[str, str]] = frozenset()
    args: frozenset[tuple[str, str, tuple[int, ...]]] = frozenset()


@value
class TraceOptions(Value):
    """Knobs common to backends.

    cpu: ptrace CPU placement: "same" (pin tracer and workload to one CPU:
         cheap stops, but the workload gets one CPU), "any" (no pinning), or a
         CPU number.
    duration: stop attach modes after this many seconds (None: until Ctrl-C).
    progress: called now and then with a short status dict for the live display.
    known: calls a baseline explains, which the backend may leave to the kernel (fast gate);
           None: observe everything.
    waiting: called once when the command has exited but processes it started still run (the
         trace goes on until they exit, like strace -f), with its status and [(pid, exe)] of them.
    """
    cpu: str = "same"
    duration: float | None = None
    progress: Callable[[dict], None] | None = None
    known: Known | None = None
    waiting: Callable[[int, list[tuple[int, str]]], None] | None = None
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """A way of observing a workload that produces a Recording."""

    name: str = ""

    @classmethod
    @abstractmethod
    def usable(cls) -> tuple[bool, str]:
        """(True, "") when this backend works here, else (False, what is missing and how to fix it)."""

    @abstractmethod
    def trace(self, target: Target, options: TraceOptions) -> Recording:
        """Trace ``target`` until it ends (or Ctrl-C / duration); always return what was seen.

        Raises UserError for a target that cannot be traced (command not found:
        exit_code 127; not executable: 126; unsupported target for this backend: 2).
        """


def processes(tids) -> list[tuple[int, str]]:
    """The distinct processes (tgid, executable) of these tasks that still exist."""
    out: dict[int, str] = {}
    for tid in tids:
        try:
            with open(f"/proc/{tid}/status") as fh:
                tgid = next(int(line.split()[1]) for line in fh if line.startswith("Tgid:"))
            exe = os.readlink(f"/proc/{tgid}/exe")
        except (OSError, StopIteration, ValueError):
            continue
        out[tgid] = exe
    return sorted(out.items())
