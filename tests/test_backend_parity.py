"""Both tracers tell the same truth: ptrace and eBPF record equal facts for small deterministic
workloads (tests/workloads/parity.c, a script without #!), and `check` accepts a run of one
backend against a baseline learned by the other (root: eBPF)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from leastpriv.kernel import semantics
from leastpriv.tracer.recording import Recording

from .conftest import lp, need_ebpf

pytestmark = pytest.mark.timeout(300)

MODES = ("dirfd", "chdir", "links", "creat", "names", "failed", "threads", "forkexec", "noshebang")

# What may differ between the backends, and why (README "Both backends"):
#  - counts, results and errnos: ptrace samples the results of frequent calls; counts are compared
#    by what the learner uses (which syscalls, which argument values), never by number;
#  - futex: whether a thread's join has to wait is timing (the thread may be done already);
#  - capabilities: eBPF sees the kernel's checks, ptrace infers them from syscalls (README).
TIMING = frozenset({"futex"})


def _tree(work: Path) -> None:
    """A fresh copy of the tree every workload starts from (the same paths for both backends)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "d" / "sub").mkdir(parents=True)
    (work / "d" / "f1").write_text("one\n")
    (work / "d" / "sub" / "f2").write_text("two\n")
    (work / "d" / "a").write_text("a\n")
    (work / "link").symlink_to("d/sub")
    (work / "flink").symlink_to("d/f1")
    script = work / "noshebang.sh"
    script.write_text("cat d/f1 link/f2 > /dev/null\n")
    script.chmod(0o755)


def _argv(exe: Path, mode: str) -> list[str]:
    return ["./noshebang.sh"] if mode == "noshebang" else [str(exe), mode]


def facts(rec: Recording) -> dict:
    """The facts the learner uses, in a form two backends' recordings can be compared in."""
    return {
        "syscalls": {a: sorted(set(t) - TIMING) for a, t in rec.syscalls.items()},
        "args": {a: {n: sorted(v) for n, v in t.items()} for a, t in rec.args.items()},
        "files": {p: sorted(acc) for p, acc in rec.files.items()},
        "execs": sorted(rec.execs),
        "network": sorted(e.key() for e in rec.network),
        "executables": {x: {a: sorted(set(s) - TIMING) for a, s in t.items()} for x, t in rec.executables.items()},
        "exit_status": rec.exit_status,
    }


@pytest.fixture(scope="module")
def parity_exe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bin") / "parity"
    src = Path(__file__).parent / "workloads" / "parity.c"
    assert os.system(f"gcc -O1 -pthread -o {out} {src}") == 0
    return out


@pytest.fixture(autouse=True)
def _root():
    need_ebpf()


def _learn(backend: str, argv: list[str], work: Path, out: Path) -> tuple[Recording, Path]:
    _tree(work)
    prof, rec = out / f"{backend}-{time.monotonic_ns()}.json", out / f"rec-{time.monotonic_ns()}.json"
    proc = lp("learn", "--backend", backend, "-o", str(prof), "--save-recording", str(rec), "--", *argv, cwd=work)
    assert proc.returncode == 0, proc.stderr
    return Recording.load(str(rec)), prof


@pytest.mark.parametrize("mode", MODES)
def test_ptrace_and_ebpf_record_the_same_facts(parity_exe, tmp_path, mode):
    work = tmp_path / "w"
    argv = _argv(parity_exe, mode)
    by_ptrace, _ = _learn("ptrace", argv, work, tmp_path)
    by_ebpf, _ = _learn("ebpf", argv, work, tmp_path)
    assert by_ebpf.lost_events == 0 and by_ebpf.complete and by_ptrace.complete
    a, b = facts(by_ptrace), facts(by_ebpf)
    for key in a:
        assert a[key] == b[key], f"{mode}: {key} differ:\nptrace {a[key]}\nebpf   {b[key]}"
    # and they are the right facts: paths as the kernel resolved them, nothing made up
    files = a["files"]
    w = str(work)
    expect = {
        "dirfd": {f"{w}/d/f1": ["read"], f"{w}/d/sub/f2": ["read"], f"{w}/d": ["read"], f"{w}/d/sub": ["read"]},
        "chdir": {f"{w}/d/f1": ["read"], f"{w}/d/sub/f2": ["read"], f"{w}/d/a": ["read"], w: ["read"]},
        "links": {f"{w}/d/f1": ["read"], f"{w}/d/sub/f2": ["read"]},
        "creat": {f"{w}/d/f1": ["write"], f"{w}/d/new1": ["create", "write"], f"{w}/d/new2": ["create", "write"],
                  f"{w}/d/new3": ["create", "read", "write"], f"{w}/d": ["read"]},
        "names": {f"{w}/d/a": ["write"], f"{w}/d/b": ["create", "read"], f"{w}/d/c": ["create", "write"],
                  f"{w}/d/s": ["create", "write"], f"{w}/d/m": ["create"], f"{w}/d/m/s2": ["create"],
                  f"{w}/d/sub/b2": ["create"], f"{w}/d": ["read"]},
        "failed": {f"{w}/d/nosock": ["write"]},
        "threads": {f"{w}/d/f1": ["read"], f"{w}/d/sub/f2": ["read"]},
        "forkexec": {f"{w}/d/f1": ["read"], "/dev/null": ["write"]},
        "noshebang": {f"{w}/d/f1": ["read"], f"{w}/d/sub/f2": ["read"], "/dev/null": ["write"],
                      f"{w}/noshebang.sh": ["read"]},
    }[mode]
    mine = {p: acc for p, acc in files.items() if p == w or p.startswith(w + "/") or p == "/dev/null"}
    assert mine == expect, mode
    if mode == "failed":
        assert ("connect", "AF_UNIX", f"{w}/d/nosock", -1, "stream") in a["network"]
        assert ("connect", "AF_INET", "127.0.0.1", 1, "tcp") in a["network"]
    if mode == "forkexec":
        assert "/usr/bin/cat" in a["execs"]


def test_check_accepts_a_run_of_the_other_backend_both_ways_five_times(parity_exe, tmp_path):
    """A baseline learned by ptrace (a laptop) checked by eBPF (CI as root), and the other way round."""
    work = tmp_path / "w"
    script = tmp_path / "all.sh"
    script.write_text("".join(f"{parity_exe} {m}\n" for m in MODES if m != "noshebang") + "./noshebang.sh\n")
    script.chmod(0o755)
    argv = ["/bin/sh", str(script)]
    for learned_by, checked_by in (("ptrace", "ebpf"), ("ebpf", "ptrace")):
        _, prof = _learn(learned_by, argv, work, tmp_path)
        for i in range(5):
            _tree(work)
            proc = lp("check", "--baseline", str(prof), "--backend", checked_by, "--", *argv, cwd=work)
            assert proc.returncode == 0, f"{learned_by} -> {checked_by} #{i}: {proc.stdout}\n{proc.stderr}"


def test_the_generated_ebpf_header_is_up_to_date():
    here = Path(__file__).resolve().parent.parent / "leastpriv" / "tracer" / "ebpf" / "ebpf_semantics.h"
    assert here.read_text() == semantics.c_header(), "run `make tables` (tools/gen_ebpf_semantics.py)"
