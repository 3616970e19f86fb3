#!/usr/bin/env python3
"""`make bench`: wall time of `leastpriv learn` against the untraced run and `strace -f -o /dev/null`.

Not a test: it prints one table (median and min of REPS runs) with the ratios to the untraced
run and to strace, and a start-up row (`learn -- true`). Every runner gets the same CPU
placement: `taskset -c CPU` for the untraced run and strace, `--cpu CPU` for leastpriv
(which pins tracer and workload to it).

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


def workloads(tmp: str) -> list[tuple[str, list[str]]]:
    tree = "/usr/include" if os.path.isdir("/usr/include/linux") else sys.prefix
    return [
        ("start-up: true", ["true"]),
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


def _row(cells: list[str]) -> str:
    widths = (40, 33, 9, 9, 11, 9)
    return " ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="0", help="CPU all runners are pinned to, or 'any' (default 0)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default=None, help="run only workloads whose name contains this")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        print("bench: strace is not installed (make install installs it)", file=sys.stderr)
        return 2
    # an installed package has its byte code; an editable checkout may not (PYTHONDONTWRITEBYTECODE):
    # compile it once so that the start-up measured is an installed leastpriv's
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "leastpriv")], check=False,
                   stdout=subprocess.DEVNULL)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp:
        print(f"leastpriv bench: CPU placement {args.cpu}; median (and min) of {args.reps} runs; "
              f"{os.cpu_count()} CPUs; kernel {os.uname().release}")
        header = _row(["workload", "runner", "median s", "min s", "x untraced", "x strace"])
        print(header)
        print("-" * len(header))
        for wname, cmd in workloads(tmp):
            if args.only and args.only not in wname:
                continue
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)   # warm the page cache
            base = strace = None
            for rname, prefix in runners(args.cpu, tmp):
                runs = [timed([*prefix, *cmd], tmp) for _ in range(args.reps)]
                med = statistics.median(runs)
                base = base if base is not None else med
                if rname.startswith("strace"):
                    strace = med
                startup = wname.startswith("start-up")
                print(_row([wname, rname, f"{med:.3f}", f"{min(runs):.3f}",
                            "" if startup else f"{med / base:.2f}",
                            "" if startup or not strace else f"{med / strace:.2f}"]), flush=True)
                if rname.endswith("ebpf") and not startup:
                    # the workload's own time, measured inside the trace and untraced by the same wrapper
                    iw, ic = _median2([_self_timed([*prefix], cmd, tmp) for _ in range(args.reps)])
                    aw, ac = _median2([_self_timed(pin(args.cpu), cmd, tmp) for _ in range(args.reps)])
                    print(_row([wname, "  ebpf: workload's own wall", f"{iw:.3f}", "", f"{iw / aw:.2f}", ""]))
                    print(_row([wname, "  ebpf: workload's own CPU", f"{ic:.3f}", "", f"{ic / ac:.2f}", ""]),
                          flush=True)
                    notes.append(f"{wname}: untraced, same timer: wall {aw:.3f} s, CPU {ac:.3f} s")
        print()
        print("x untraced / x strace: ratio of medians (< 1.00 under x strace: learn is faster than strace).")
        print("start-up: `learn -- true`, i.e. interpreter, imports, trace set-up (BPF compile and load for")
        print("ebpf), profile written. ebpf 'own' rows: the workload timed from inside the trace, which")
        print("leaves out leastpriv's start-up (the BPF programs run in the workload's own context).")
        for n in notes:
            print(f"  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
