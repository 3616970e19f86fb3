"""The ptrace backend's hot loop in C (leastpriv/tracer/_ptloop.c) against the pure-Python loop.

Each workload is traced twice in this process, once per loop (LEASTPRIV_PTRACE_PURE), and the two
Recordings must be the same in every fact: syscall counts, sampled results and errnos per ABI, argument
values, files with their access kinds, execs, per-executable syscalls, notes. The workloads are made
deterministic where a real program is not by itself (no ASLR, a fixed hash seed, git without threads), so
that a difference is the loop's, not the run's."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from leastpriv.tracer import ptrace
from leastpriv.tracer.base import Command, TraceOptions

from .conftest import WORKLOADS, need
from .learning import PYTHON

VOLATILE = ("id", "started", "ended")


def c_loop_built() -> bool:
    try:
        from leastpriv.tracer import _ptloop  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_c_loop_is_built_in_ci():
    """setup.py builds the extension optionally (an install without a compiler still works); CI has gcc and
    Python's headers, so there a missing module is a broken build, not a fallback."""
    need(c_loop_built(), "leastpriv.tracer._ptloop is not built (make venv compiles it; see setup.py)")
    from leastpriv.tracer import _ptloop
    assert ptrace._c_loop() is not None, (f"the built module speaks PROTOCOL {getattr(_ptloop, 'PROTOCOL', 0)}, "
                                          f"not ptrace.py's: a stale build of _ptloop.c (make venv rebuilds it)")


class Counted:
    """The C module, counting its answers (each one a stop it handed to Python, or a progress tick)."""

    def __init__(self, module):
        self.module, self.answers = module, 0

    def __getattr__(self, name):
        return getattr(self.module, name)

    def run(self, *args):
        self.answers += 1
        return self.module.run(*args)


def trace(argv, monkeypatch, pure: bool) -> dict:
    if pure:
        monkeypatch.setenv(ptrace.PURE_ENV, "1")
    else:
        monkeypatch.delenv(ptrace.PURE_ENV, raising=False)
    loops = []
    real = ptrace._c_loop
    monkeypatch.setattr(ptrace, "_c_loop", lambda: loops.append(real() and Counted(real())) or loops[-1])
    rec = ptrace.PtraceBackend().trace(Command(tuple(argv)), TraceOptions())
    assert (loops[0] is None) == pure        # the loop asked for ran
    d = rec.to_json()
    if not pure:   # how much of the run the C loop left to Python
        d["handed"] = loops[0].answers / sum(st.count for t in rec.syscalls.values() for st in t.values())
    for k in VOLATILE:
        d.pop(k)
    # an O_TMPFILE file is named by its inode number (/proc/PID/fd/N -> "DIR/#12345 (deleted)"): new each run
    for k in ("files", "paths"):
        d[k] = {re.sub(r"/#[0-9]+$", "/#INODE", p): v for p, v in d.get(k, {}).items()}
    assert rec.complete and rec.exit_status == 0, d
    return d


def same(argv, monkeypatch, fresh: Path | None = None, compare: str = "all", racy=()) -> dict:
    """Trace ``argv`` with each loop and fail on any difference. ``fresh``: a directory the workload writes
    in, emptied before each run. What differs between two runs of the same loop is left out:
    compare="counts": threads interleave, so which thread's call is sampled (its result) is a race: the
    counts, not the sampled results; "facts": which syscalls, argument values, files, execs, not how many.
    ``racy``: syscalls (arch, name) whose count is a race (a join's futex wait), compared by presence."""
    need(c_loop_built(), "leastpriv.tracer._ptloop is not built (make venv compiles it; see setup.py)")
    runs = []
    for pure in (False, True):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir()
        d = trace(argv, monkeypatch, pure)
        if compare == "counts":
            d["syscalls"] = {a: {n: st["count"] for n, st in t.items()} for a, t in d["syscalls"].items()}
        elif compare == "facts":
            d["syscalls"] = {a: {n: "seen" for n in t} for a, t in d["syscalls"].items()}
            d["args"] = {a: {n: sorted(tuple(v["values"]) for v in vals) for n, vals in t.items()}
                         for a, t in d["args"].items()}
        for arch, name in racy:
            d["syscalls"][arch][name] = "seen"
        runs.append(d)
    c, py = runs
    for key in py:
        if c[key] != py[key]:
            diff = {k: (v, py[key].get(k)) for k, v in c[key].items() if v != py[key].get(k)} \
                if isinstance(c[key], dict) else (c[key], py[key])
            if key == "syscalls":
                diff = {(a, n): (st, py[key].get(a, {}).get(n)) for a, t in c[key].items() for n, st in t.items()
                        if st != py[key].get(a, {}).get(n)}
            pytest.fail(f"{key} differ (C loop, Python loop): {diff}")
    return c


@pytest.fixture
def steady(monkeypatch):
    """A workload's syscalls the same from run to run: no address randomisation (malloc's brk/mmap
    calls depend on it), a fixed Python hash seed, no bytecode written."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return ["setarch", "x86_64", "-R"]


def test_find(steady, monkeypatch):
    d = same([*steady, "find", "/usr/share/doc", "-name", "x"], monkeypatch)
    assert d["syscalls"]["x86_64"]["newfstatat"]["count"] > 1000 or d["syscalls"]["x86_64"]["getdents64"]


def test_git_status(steady, monkeypatch, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree("/usr/include/linux" if os.path.isdir("/usr/include/linux") else WORKLOADS, repo / "src")
    git = ["git", "-C", str(repo), "-c", "user.email=t@localhost", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    (repo / "src" / "changed.h").write_text("/* changed */\n")
    old = 1_000_000_000   # files older than the index: no racy-git re-reads, which depend on timing
    for p in repo.rglob("*"):
        if ".git" not in p.parts:
            os.utime(p, (old, old), follow_symlinks=False)
    status = [*git, "-c", "core.preloadIndex=false", "-c", "index.threads=1", "status", "--porcelain"]
    subprocess.run(status, check=True, capture_output=True)   # refresh the index once, untraced
    d = same([*steady, *status], monkeypatch)
    assert d["syscalls"]["x86_64"]["newfstatat"]["count"] or d["syscalls"]["x86_64"]["lstat"]


def test_python_imports(steady, monkeypatch):
    d = same([*steady, PYTHON, "-c", "import json, sqlite3, email.parser, asyncio; print(json.dumps([1]))"],
             monkeypatch)
    assert d["syscalls"]["x86_64"]["openat"]["errnos"]


def test_fork_exec_chain(steady, monkeypatch, tmp_path):
    f = tmp_path / "f"
    same([*steady, "sh", "-c", f"ls /etc >/dev/null; echo x > {f}; cat {f}; sh -c 'id -u; rm {f}'; "
                               f"stat /nonexistent-lp 2>/dev/null; exit 0"], monkeypatch)


def test_every_abi(steady, monkeypatch, build_c):
    """The calls the C loop handles, many times (so that it handles them: new entries go to Python): in a
    64-bit program's three ABIs (native, int $0x80 = i386, the x32 bit), succeeding, always failing (sampled
    at every call), failing every other call; then natively in an i386 program; then in 4 threads."""
    d = same([*steady, str(build_c("lp_loopcases")), "3000"], monkeypatch)
    assert d["handed"] < 0.05          # the C loop handled these calls
    assert d["syscalls"]["x86_64"]["rt_sigsuspend"] == {"count": 10, "results": 0, "ok": 0, "errnos": {}}   # restarts
    assert d["syscalls"]["x86_64"]["rt_sigreturn"]["count"] == 10   # one SIGALRM per sigsuspend, none missed
    assert d["syscalls"]["x86_64"]["getppid"]["count"] == 3000
    assert d["syscalls"]["x86"]["close"] == {"count": 3000, "results": 3000, "ok": 0, "errnos": {"EBADF": 3000}}
    assert d["syscalls"]["x32"]["getppid"]["count"] == 3000
    d = same([*steady, str(build_c("lp_loopcases", m32=True)), "3000"], monkeypatch)
    assert d["syscalls"]["x86"]["getppid"]["count"] == 3000 and d["handed"] < 0.05
    assert d["syscalls"]["x86"]["close"]["count"] >= 4500 and d["syscalls"]["x86"]["dup"]["errnos"]
    d = same([*steady, str(build_c("lp_loopcases")), "3000", "3"], monkeypatch, compare="counts",
             racy=[("x86_64", "futex")])
    assert d["syscalls"]["x86"]["getppid"] == 12000 and d["handed"] < 0.05


def test_threads_forks_clone3_orphans(steady, monkeypatch, build_c, tmp_path):
    d = same([*steady, str(build_c("lp_tasks")), str(tmp_path / "w"), "unknown"], monkeypatch, tmp_path / "w")
    assert d["syscalls"]["x86"]["getpid"]["count"] == 1 and d["syscalls"]["x32"]["getpid"]["count"] == 1


def test_python_threads_and_subprocesses(steady, monkeypatch, tmp_path):
    # a Python program: the GIL's hand-over between the threads is a futex race, each thread's first malloc maps an arena or not
    # depending on contention, subprocess.run polls its pipes as often as the child happens to write: the
    # counts of futex, mmap, mprotect, poll differ between runs of either loop
    same([*steady, PYTHON, str(WORKLOADS / "lp_pytasks.py"), str(tmp_path / "w")], monkeypatch, tmp_path / "w",
         compare="facts")


@pytest.mark.parametrize("pure", [False, True], ids=["C loop", "Python loop"])
def test_a_signal_handlers_exception_ends_the_trace_and_the_workload(pure, monkeypatch):
    """A Python signal handler runs while the loop waits (the C loop waits with the GIL released and runs
    the handlers when waitpid is interrupted); its exception (here KeyboardInterrupt) ends the trace as
    run() ends it: the workload killed and reaped, the Recording saved as interrupted."""
    if not pure:
        need(c_loop_built(), "leastpriv.tracer._ptloop is not built (make venv compiles it; see setup.py)")
    if pure:
        monkeypatch.setenv(ptrace.PURE_ENV, "1")
    else:
        monkeypatch.delenv(ptrace.PURE_ENV, raising=False)

    def interrupt(sig, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGPROF, interrupt)    # not a signal the tracer forwards: ours stays
    timer = threading.Timer(0.5, signal.pthread_kill, (threading.get_ident(), signal.SIGPROF))
    t0 = time.monotonic()
    timer.start()
    try:
        rec = ptrace.PtraceBackend().trace(Command(("sleep", "30")), TraceOptions())
    finally:
        timer.cancel()
        signal.signal(signal.SIGPROF, old)
    assert time.monotonic() - t0 < 10
    assert rec.interrupted == "SIGINT" and not rec.complete
    assert "nanosleep" in rec.syscalls["x86_64"] or "clock_nanosleep" in rec.syscalls["x86_64"]
    with pytest.raises(ChildProcessError):     # nothing left: no tracee stopped, no zombie
        os.waitpid(-1, os.WNOHANG | 0x40000000)


IOCTLS = {(0x5401,): "TCGETS", (0x541B,): "FIONREAD", (0x5451,): "FIOCLEX"}


def test_opens_and_argument_values(steady, monkeypatch, build_c, tmp_path):
    """The opens and tracked-argument calls the C loop handles (lp_loopfiles.c): ioctl requests, mmap and
    mprotect prot values, opens of existing files, a directory, a missing file, a pipe through /proc; through
    the i386 and x32 ABIs too. "plain": only those, so the C loop handles nearly every stop; then with the
    ones it hands to Python (O_CREAT of new and existing files, O_CREAT|O_EXCL, O_TMPFILE, a deleted file),
    then in 3 threads (each thread's first open is Python's: its root is not known yet)."""
    w, n = tmp_path / "w", 300
    exe = str(build_c("lp_loopfiles"))
    d = same([*steady, exe, str(w), str(n), "0", "plain"], monkeypatch, w)
    assert d["handed"] < 0.05
    args = {name: {tuple(v["values"]): v["count"] for v in vals} for name, vals in d["args"]["x86_64"].items()}
    assert {IOCTLS[v]: c for v, c in args["ioctl"].items() if v in IOCTLS} == dict.fromkeys(IOCTLS.values(), n)
    assert {(0,), (1,), (3,)} <= set(args["mmap"]) and args["mmap"][(0,)] >= n // 3
    assert args["mprotect"][(1,)] >= n and args["prctl"][(3,)] == n
    assert {tuple(v["values"]): v["count"] for v in d["args"]["x86"]["ioctl"]} == {(0x541B,): n}
    files = d["files"]
    assert files[f"{w}/existing"] == ["create", "read", "write"] and files[str(w)] == ["read"]   # main made it
    assert f"{w}/missing" not in files and not [p for p in files if not p.startswith("/")]
    x86 = d["syscalls"]["x86"]["open"]
    assert x86 == {"count": 3 * n, "results": 3 * n, "ok": 2 * n, "errnos": {"ENOENT": n}}
    assert d["syscalls"]["x32"]["openat"]["count"] == n

    d = same([*steady, exe, str(w), str(n)], monkeypatch, w)
    files = d["files"]
    assert files[f"{w}/new-0-0"] == ["create", "write"] and files[f"{w}/#INODE"] == ["read", "write"]
    errnos = d["syscalls"]["x86_64"]["openat"]["errnos"]
    assert errnos["EEXIST"] == n and errnos["ENOENT"] >= n      # and the loader's
    assert f"{w}/deleted" in files

    d = same([*steady, exe, str(w), "100", "3", "plain"], monkeypatch, w, compare="counts",
             racy=[("x86_64", "futex"), ("x86_64", "mmap"), ("x86_64", "munmap"), ("x86_64", "mprotect")])
    assert d["handed"] < 0.05 and d["syscalls"]["x86"]["open"] == 1200


def test_opens_and_argument_values_i386(steady, monkeypatch, build_c, tmp_path):
    """The same calls in an i386 program: open/openat/ioctl/mmap2 of the i386 ABI, natively."""
    w, n = tmp_path / "w", 300
    d = same([*steady, str(build_c("lp_loopfiles", m32=True)), str(w), str(n), "0", "plain"], monkeypatch, w)
    assert d["handed"] < 0.05
    args = {name: {tuple(v["values"]): v["count"] for v in vals} for name, vals in d["args"]["x86"].items()}
    assert {IOCTLS[v]: c for v, c in args["ioctl"].items() if v in IOCTLS} == dict.fromkeys(IOCTLS.values(), n)
    assert {(0,), (1,), (3,)} <= set(args["mmap2"]) and args["mprotect"][(1,)] >= n
    assert d["files"][f"{w}/existing"] == ["create", "read", "write"]
    assert d["syscalls"]["x86"]["openat"]["errnos"]["ENOENT"] >= n
    d = same([*steady, str(build_c("lp_loopfiles", m32=True)), str(w), str(n)], monkeypatch, w)
    assert d["files"][f"{w}/new-0-0"] == ["create", "write"]


def test_opens_in_another_root(monkeypatch, build_c, tmp_path):
    """A workload chrooted elsewhere: /proc/PID/fd/N names its files as our root sees them, and they are recorded
    as it sees them (inside its root). The C loop hands those opens to Python (a root other than "/")."""
    root = tmp_path / "root"
    (root / "w").mkdir(parents=True)
    shutil.copy(build_c("lp_loopfiles", static=True), root / "lpf")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    d = same(["setarch", "x86_64", "-R", "chroot", str(root), "/lpf", "/w", "50", "0", "plain"], monkeypatch,
             root / "w")
    assert d["files"]["/w/existing"] == ["create", "read", "write"] and d["files"]["/w"] == ["read"]
    assert not [p for p in d["files"] if p.startswith(str(tmp_path))]
