#!/usr/bin/env python3
"""`make bench`: wall time of `leastpriv learn` against the untraced run and `strace -f -o /dev/null`.

Not a test: it prints a table (median of REPS runs) and the ratios. Every
runner gets the same CPU placement: `taskset -c CPU` for the untraced run and
strace, `--cpu CPU` for leastpriv (which pins tracer and workload to it).

To add a backend (e.g. eBPF), add its name to BACKENDS; `learn_argv` builds its
command line. Options: --cpu N|any, --reps N, --only WORKLOAD_NAME.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEASTPRIV = [sys.executable, "-m", "leastpriv"]

# leastpriv backends to measure: one row each ("ebpf" needs root and bcc).
BACKENDS = ["ptrace"]


def _ebpf_usable() -> bool:
    try:
        sys.path.insert(0, str(ROOT))
        from leastpriv.tracer.ebpf import usable_reason
        why = usable_reason()
    except Exception as exc:  # pragma: no cover
        why = str(exc)
    if why:
        print(f"bench: no ebpf row: {why}", file=sys.stderr)
    return not why


if _ebpf_usable():
    BACKENDS.append("ebpf")
_EBPF_STARTUP: list[float] = []   # median wall time of `learn --backend ebpf -- true` (interpreter + BPF compile/attach)


def workloads(tmp: str) -> list[tuple[str, list[str]]]:
    tree = "/usr/include" if os.path.isdir("/usr/include/linux") else sys.prefix
    return [
        ("syscall storm: dd bs=1 count=100000",
         ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=100000", "status=none"]),
        (f"realistic: tar -cf of {tree}", ["tar", "-cf", os.path.join(tmp, "out.tar"), "-C", tree, "."]),
        ("realistic: gcc -O2 of a test workload", ["gcc", "-O2", "-pthread", "-o", os.path.join(tmp, "a.out"),
                                                   str(ROOT / "tests" / "workloads" / "lp_tasks.c")]),
    ]


def pin(cpu: str) -> list[str]:
    return [] if cpu == "any" else ["taskset", "-c", cpu]


def learn_argv(backend: str, cpu: str, tmp: str) -> list[str]:
    if backend == "ebpf":   # no tracer process to place: pin leastpriv and the workload like the untraced run
        return [*pin(cpu), *LEASTPRIV, "learn", "--backend", "ebpf", "-o", os.path.join(tmp, "ebpf.json"), "--"]
    return [*LEASTPRIV, "learn", "--backend", backend, "--cpu", cpu, "-o", os.path.join(tmp, f"{backend}.json"), "--"]


def runners(cpu: str, tmp: str) -> list[tuple[str, list[str]]]:
    rows = [("untraced", pin(cpu)), ("strace -f -o /dev/null", [*pin(cpu), "strace", "-f", "-o", "/dev/null"])]
    rows += [(f"leastpriv learn --backend {b}", learn_argv(b, cpu, tmp)) for b in BACKENDS]
    return rows


def timed(argv: list[str], tmp: str) -> float:
    for f in Path(tmp).glob("*.json"):
        f.unlink()      # each learn starts a fresh profile
    t = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.decode()[-2000:]}")
    return dt


_TIMER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
          "r = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
          "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
          "open(sys.argv[1], 'w').write(f'{time.perf_counter() - t} {u.ru_utime + u.ru_stime}'); sys.exit(r.returncode)")


def _self_timed(prefix: list[str], cmd: list[str], tmp: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the workload itself, timed by a wrapper process (under `prefix`, e.g. learn).

    BPF programs run in the workload's own context, so their cost is in its CPU time; wall time on a
    shared VM is mostly noise for I/O-bound work.
    """
    out = os.path.join(tmp, "elapsed.txt")
    timed([*prefix, sys.executable, "-c", _TIMER, out, *cmd], tmp)
    wall, cpu = Path(out).read_text().split()
    return float(wall), float(cpu)


def _median2(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="0", help="CPU all runners are pinned to, or 'any' (default 0)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=None, help="run only workloads whose name contains this")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        print("bench: strace is not installed (make install installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp:
        print(f"CPU placement: {args.cpu}; median of {args.reps} runs; {os.cpu_count()} CPUs; kernel {os.uname().release}")
        header = f"{'workload':<44} {'runner':<34} {'median s':>9} {'x untraced':>11} {'x strace':>9}"
        print(header)
        print("-" * len(header))
        for wname, cmd in workloads(tmp):
            if args.only and args.only not in wname:
                continue
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)   # warm the page cache
            base = strace = None
            for rname, prefix in runners(args.cpu, tmp):
                med = statistics.median(timed([*prefix, *cmd], tmp) for _ in range(args.reps))
                base = base if base is not None else med
                if rname.startswith("strace"):
                    strace = med
                vs_strace = f"{med / strace:9.2f}" if strace else f"{'':>9}"
                print(f"{wname:<44} {rname:<34} {med:9.3f} {med / base:11.1f} {vs_strace}", flush=True)
                if rname.endswith("ebpf"):
                    if not _EBPF_STARTUP:
                        _EBPF_STARTUP.append(statistics.median(timed([*prefix, "true"], tmp)
                                                               for _ in range(args.reps)))
                    # the workload's own time, measured inside the trace and untraced by the same wrapper
                    iw, ic = _median2([_self_timed([*prefix], cmd, tmp) for _ in range(args.reps)])
                    aw, ac = _median2([_self_timed(pin(args.cpu), cmd, tmp) for _ in range(args.reps)])
                    print(f"{wname:<44} {'  ebpf: workload wall time':<34} {iw:9.3f} {iw / aw:11.2f}"
                          f"   (untraced, same timer: {aw:.3f} s)", flush=True)
                    print(f"{wname:<44} {'  ebpf: workload CPU time':<34} {ic:9.3f} {ic / ac:11.2f}"
                          f"   (untraced: {ac:.3f} s; BPF start-up {_EBPF_STARTUP[0]:.2f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
