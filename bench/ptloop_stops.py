#!/usr/bin/env python3
"""Which stops the ptrace backend's C loop (leastpriv/tracer/_ptloop.c) hands back to Python, and the tracer's
CPU in its loop (a measurement aid, not a test; not part of `make bench`).

    .venv/bin/python bench/ptloop_stops.py [--pure] -- CMD [ARG...]

Traces CMD in this process pinned to CPU 0 (the C module wrapped to classify each of its answers: an entry stop
by its entry's handler and syscall, an exit stop by the pending entry's exit handler, other stops by event or
signal) and prints, on stderr, the syscalls, the loop's CPU (getrusage around _Session._loop, user + system)
and the hand-backs by kind, most frequent first. --pure: the Python loop (no classification)."""
from __future__ import annotations

import collections
import os
import resource
import sys

from leastpriv.tracer import ptrace
from leastpriv.tracer import ptrace_abi as abi
from leastpriv.tracer.base import Command, TraceOptions


def _kind(module, answer, iaddr, tables, pending, native) -> str:
    why, pid, status, _nsys = answer
    if why == module.INFO:
        info = abi.SyscallInfo.from_address(iaddr)
        if status == abi.STATUS_SECCOMP:
            tab = tables.get(pid)
            e = None if tab is None else tab.get(info.nr if info.arch == native else (info.arch, info.nr))
            if e is None:
                return "entry: a new task" if tab is None else "entry: a new syscall"
            h = e[ptrace.ON_ENTRY]
            return f"entry: {getattr(h, '__name__', h)} {e[ptrace.NAME][1]}"
        e = pending.get(pid)
        h = None if e is None else e[ptrace.ON_EXIT]
        return "exit: nothing pending" if e is None else f"exit: {getattr(h, '__name__', h)} {e[ptrace.NAME][1]}"
    if why == module.WAITED:
        if not os.WIFSTOPPED(status):
            return "a task ended"
        return f"event {status >> 16}" if status >> 16 else f"signal {os.WSTOPSIG(status)}"
    return {module.TICK: "progress tick", module.FAILED: "a ptrace call failed", module.NONE: "no task left"}[why]


def main(argv: list[str]) -> int:
    pure = argv[:1] == ["--pure"]
    argv = argv[1:] if pure else argv
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    counts: collections.Counter = collections.Counter()
    real = ptrace._c_loop()

    class Classified:
        def __getattr__(self, name):
            return getattr(real, name)

        def run(self, iaddr, tables, pending, native, *rest):
            answer = real.run(iaddr, tables, pending, native, *rest)
            counts[_kind(real, answer, iaddr, tables, pending, native)] += 1
            return answer

    if pure:
        os.environ[ptrace.PURE_ENV] = "1"
    elif real is None:
        print("the C loop is not built (make venv)", file=sys.stderr)
        return 2
    else:
        ptrace._c_loop = Classified
    cpu = []
    loop = ptrace._Session._loop

    def timed(self):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        try:
            return loop(self)
        finally:
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3)

    ptrace._Session._loop = timed
    rec = ptrace.PtraceBackend().trace(Command(tuple(argv)), TraceOptions(cpu="0"))
    calls = sum(st.count for t in rec.syscalls.values() for st in t.values())
    print(f"{calls} syscalls, loop CPU {cpu[0]:.1f} ms, {sum(counts.values())} answers of the C loop"
          + (" (Python loop: not counted)" if pure else ""), file=sys.stderr)
    for kind, n in counts.most_common():
        print(f"{n:8d}  {kind}", file=sys.stderr)
    return 0 if rec.exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
