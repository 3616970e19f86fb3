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
                    start = _EBPF_STARTUP[0]
                    alone = max(med - start, 0.0)
                    print(f"{wname:<44} {'  ebpf minus start-up ' + f'({start:.2f} s)':<34} {alone:9.3f} "
                          f"{alone / base:11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
