"""The ptrace backend's seccomp probe runs in a throwaway thread: what it installs stays in that thread,
and where filters cannot be installed the backend falls back to two stops per call and says so."""
from __future__ import annotations

import subprocess
import sys

from leastpriv.tracer import ptrace_abi as abi


def _status(field: str) -> str:
    with open("/proc/self/status") as fh:
        return next(line.split(":", 1)[1].strip() for line in fh if line.startswith(field + ":"))


def test_the_probe_leaves_this_process_unfiltered():
    assert abi.seccomp_filter_works() == (True, "")
    assert _status("Seccomp") == "0"
    assert _status("NoNewPrivs") == "0"


PROBE_UNDER_A_FILTER = r"""
import errno, sys
import pyseccomp
from leastpriv.tracer import ptrace_abi as abi
from leastpriv.tracer.base import Command, TraceOptions
from leastpriv.tracer.ptrace import PtraceBackend

f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
for name in ("prctl", "seccomp"):   # this process (a container's profile, say) may not install filters
    f.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
f.load()
print(abi.seccomp_filter_works())
rec = PtraceBackend().trace(Command(("true",)), TraceOptions())
print(rec.exit_status, rec.complete, "execve" in rec.syscalls["x86_64"])
print(rec.notes)
"""


def test_where_filters_are_refused_the_probe_says_so_and_the_trace_falls_back():
    proc = subprocess.run([sys.executable, "-c", PROBE_UNDER_A_FILTER], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "(False, 'installing a seccomp filter failed: Operation not permitted')"
    assert lines[1] == "0 True True"
    assert "fell back to PTRACE_SYSCALL, two stops per syscall" in lines[2]
