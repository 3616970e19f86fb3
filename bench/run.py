#!/usr/bin/env python3
"""`make bench`: what leastpriv costs where users feel it. Not a test: one table, printed as it goes.

Three parts, every runner of a part interleaved with the others (rep 1 of each, then rep 2, ...; each
round starts one runner later, so that each runner takes each place), medians of --reps runs, ratios
taken within the same run of the bench (the machine is shared):

1. nginx + wrk (requests/s, p99 latency): nginx (1 worker) pinned to CPU 0 serves a 4 KiB file
   to `wrk` pinned to CPU 1 over 127.0.0.1. Untraced; under an EMPTY BPF program on raw_syscalls
   sys_enter + sys_exit (the floor of this attach method: every task takes the syscall slow path);
   under `learn --backend ebpf -- nginx`; attached to a running nginx with `learn --pid`.
2. The CI gate: `check --baseline B -- dd bs=1 count=N` where B was learned from the same dd
   (a storm B explains). The marginal cost per call: (t(N) - t(small)) / the same untraced, so
   start-up is differenced out. Fast gate (default) and --full-trace for ptrace; eBPF with the
   empty-program floor beside it.
3. Whole commands (wall time, start-up included): untraced, `strace -f -o /dev/null`,
   `learn --backend ptrace`, all on CPU 0; find, tar, git status, a Python test run (6 test files,
   ~1 s), pytest's start-up with one quick file (~0.2 s), and the start-up (`learn -- true`). Beside the
   whole-run ratio, the ratio with each tracer's own start-up (its `true` row) differenced out: what
   tracing the workload's calls costs.

Options: --reps N (default 5; part 1 rounds it up to whole turns of its rotation: 8), --only
nginx|gate|commands, --cpu N (part 2 and 3).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the command users run: the console script of this interpreter's environment (python -m would add runpy)
_SCRIPT = Path(sys.executable).parent / "leastpriv"
LEASTPRIV = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "leastpriv"]
WIDTHS = (34, 40, 10, 10, 10, 12, 14, 11)

FLOOR_PROGRAM = r"""
RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }
RAW_TRACEPOINT_PROBE(sys_exit) { return 0; }
"""


# ------------------------------------------------------------------ helpers
def pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu]


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run(argv, **kw)
    return proc


def timed(argv: list[str], ok=(0,)) -> float:
    return timed_err(argv, ok)[0]


def timed_err(argv: list[str], ok=(0,), **kw) -> tuple[float, str]:
    """(wall seconds, stderr) of a run."""
    t = time.perf_counter()
    proc = run(argv, **kw)
    dt = time.perf_counter() - t
    if proc.returncode not in ok:
        raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.decode()[-2000:]}")
    return dt, proc.stderr.decode(errors="replace")


def dd_own(stderr: str) -> float:
    """dd's own time of its copy loop ("... copied, 0.203 s, ..." in the C locale), start-up and the tracer's
    set-up and teardown not included."""
    m = re.search(r"copied, ([\d.e+-]+) s,", stderr)
    if not m:
        raise SystemExit(f"bench: no transfer line from dd in: {stderr[-500:]!r}")
    return float(m.group(1))


def rotated(runners: list, i: int) -> list:
    """Round i of an interleaved comparison: the runners in their order, started at runner i (mod their
    number), so that each takes each place in a round equally often (a runner's teardown, such as the BPF
    detach and map freeing of the one before, then weighs on every runner alike)."""
    k = i % len(runners)
    return runners[k:] + runners[:k]


def row(cells) -> str:
    return " ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS)))


def header(title: str, cols) -> None:
    print()
    print(title)
    h = row(cols)
    print(h)
    print("-" * len(h), flush=True)


class Floor:
    """An empty BPF program on raw_syscalls sys_enter/sys_exit, attached only while `on`.

    Compiled once (bcc) in a helper process that attaches on "on\\n" and detaches on "off\\n"."""

    HELPER = ("import sys\nfrom bcc import BPF\nb = BPF(text=sys.argv[1])\n"
              "b.detach_raw_tracepoint(tp='sys_enter'); b.detach_raw_tracepoint(tp='sys_exit')  # bcc attached\n"
              "print('ready', flush=True)\n"
              "for line in sys.stdin:\n"
              "    if line.strip() == 'on':\n"
              "        b.attach_raw_tracepoint(tp='sys_enter', fn_name='raw_tracepoint__sys_enter')\n"
              "        b.attach_raw_tracepoint(tp='sys_exit', fn_name='raw_tracepoint__sys_exit')\n"
              "    elif line.strip() == 'exit':\n"
              "        b.attach_raw_tracepoint(tp='sys_exit', fn_name='raw_tracepoint__sys_exit')\n"
              "    elif line.strip() == 'off exit':\n"
              "        b.detach_raw_tracepoint(tp='sys_exit')\n"
              "    else:\n"
              "        b.detach_raw_tracepoint(tp='sys_enter'); b.detach_raw_tracepoint(tp='sys_exit')\n"
              "    print('ok', flush=True)\n")

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.HELPER, FLOOR_PROGRAM], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench: the empty BPF program did not load: {self.proc.stderr.read()[-2000:]}")

    def _say(self, what: str) -> None:
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise SystemExit(f"bench: floor helper: {self.proc.stderr.read()[-2000:]}")

    def __enter__(self):
        self._say("on")
        return self

    def __exit__(self, *exc):
        self._say("off")

    @contextlib.contextmanager
    def exit_only(self):
        """The empty program on sys_exit alone: what the full trace's one program per call is attached to."""
        self._say("exit")
        try:
            yield self
        finally:
            self._say("off exit")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class BpfStats:
    """The kernel's run-time statistics of BPF programs while this is open (BPF_ENABLE_STATS: counting stops
    when its fd closes; each program run then also pays two clock reads, so the throughput runs never have
    it on), read from /proc/PID/fdinfo of the programs a process holds."""

    def __enter__(self):
        import ctypes
        attr = (ctypes.c_uint8 * 16)()    # union bpf_attr: enable_stats.type = BPF_STATS_RUN_TIME (0)
        self.fd = ctypes.CDLL(None, use_errno=True).syscall(321 if os.uname().machine == "x86_64" else 280,
                                                           32, attr, 16)   # bpf(BPF_ENABLE_STATS)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    @staticmethod
    def sample(pid: int) -> tuple[int, int]:
        """(run time in ns of all the programs PID holds, runs of its most-run program: one per syscall
        for a program on raw_syscalls)."""
        ns = most = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if "bpf-prog" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
                    continue
                info = dict(re.findall(r"^(\w+):\s+(\d+)", Path(f"/proc/{pid}/fdinfo/{fd}").read_text(), re.M))
            except OSError:
                continue
            ns += int(info.get("run_time_ns", 0))
            most = max(most, int(info.get("run_cnt", 0)))
        return ns, most


def ebpf_usable() -> str:
    if os.geteuid() != 0:
        return "not root"
    try:
        sys.path.insert(0, str(ROOT))
        from leastpriv.tracer.ebpf import usable_reason
        return usable_reason() or ""
    except Exception as exc:  # pragma: no cover
        return str(exc)


# ------------------------------------------------------------------ 1. nginx + wrk
NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    keepalive_requests 100000000;
    server {{ listen 127.0.0.1:{port}; root {d}/www; location / {{ }} }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {proc.args} exited {proc.returncode} before listening: "
                             f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port} after {timeout} s")


def _bpf_links(pid: int) -> int:
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if "bpf_link" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _cpu_ns(pidfile: str) -> int:
    """CPU time (ns) of nginx's worker processes so far (schedstat: the BPF programs run in their context)."""
    master = int(Path(pidfile).read_text())
    total = 0
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        try:
            total += int(Path(f"/proc/{child}/schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


def _wrk(port: int, seconds: float, cpu: str, pidfile: str | None = None, bpf_pid: int | None = None):
    """(requests/s, p99 latency in ms, nginx workers' CPU µs per request); with ``bpf_pid`` (stats on), also
    the BPF run time per syscall and per request (ns) of the programs that process holds."""
    c0 = _cpu_ns(pidfile) if pidfile else 0
    b0 = BpfStats.sample(bpf_pid) if bpf_pid else (0, 0)
    out = subprocess.run([*pin(cpu), "wrk", "-t1", "-c32", f"-d{int(seconds)}s", "--latency",
                          f"http://127.0.0.1:{port}/4k.bin"], capture_output=True, text=True, check=True).stdout
    b1 = BpfStats.sample(bpf_pid) if bpf_pid else (0, 0)
    c1 = _cpu_ns(pidfile) if pidfile else 0
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    nreq = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    got = (rps, float(m.group(1)) * _UNITS[m.group(2)], (c1 - c0) / 1e3 / max(nreq, 1))
    if bpf_pid:
        ns, calls = b1[0] - b0[0], b1[1] - b0[1]
        return got + (ns / max(calls, 1), ns / max(nreq, 1))
    return got


def nginx_part(reps: int, seconds: float, floor: Floor | None) -> None:
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"bench: no nginx part: {tool} is not installed (make install)", file=sys.stderr)
            return
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="lp-bench-nginx-") as d:
        os.makedirs(f"{d}/www")
        with open(f"{d}/www/4k.bin", "wb") as f:
            f.write(os.urandom(4096))
        port = _free_port()
        conf = f"{d}/nginx.conf"
        Path(conf).write_text(NGINX_CONF.format(d=d, port=port))
        cmd = [nginx, "-c", conf, "-p", d]

        def stop_nginx(proc):
            try:
                os.kill(int(Path(f"{d}/nginx.pid").read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                proc.terminate()

        def untraced(with_floor=False, stats=False, exit_only=False):
            proc = subprocess.Popen([*pin("0"), *cmd], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _wait_port(port, proc)
                _wrk(port, 1, "1")
                if with_floor:
                    with floor.exit_only() if exit_only else floor:
                        return _wrk(port, seconds, "1", f"{d}/nginx.pid", floor.proc.pid if stats else None)
                return _wrk(port, seconds, "1", f"{d}/nginx.pid")
            finally:
                stop_nginx(proc)
                proc.wait(timeout=30)

        def learned(stats=False):
            out = f"{d}/learn.json"
            proc = subprocess.Popen([*pin("0"), *LEASTPRIV, "learn", "--backend", "ebpf", "-o", out, "--", *cmd],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _wait_port(port, proc)
                _wrk(port, 1, "1")
                return _wrk(port, seconds, "1", f"{d}/nginx.pid", proc.pid if stats else None)
            finally:
                stop_nginx(proc)
                if proc.wait(timeout=60) != 0:
                    raise SystemExit(f"bench: learn -- nginx exited {proc.returncode}: "
                                     f"{proc.stderr.read().decode()[-2000:]}")
                os.unlink(out)

        def attached():
            ng = subprocess.Popen([*pin("0"), *cmd], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            out = f"{d}/pid.json"
            try:
                _wait_port(port, ng)
                master = int(Path(f"{d}/nginx.pid").read_text())
                lp = subprocess.Popen([*pin("0"), *LEASTPRIV, "learn", "--backend", "ebpf", "--pid", str(master),
                                       "-o", out], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
                deadline = time.monotonic() + 60
                while _bpf_links(lp.pid) < 3:   # sched_process_fork, sched_process_exec, sys_exit
                    if lp.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"bench: learn --pid did not attach: {lp.stderr.read().decode()[-2000:]}")
                    time.sleep(0.05)
                time.sleep(0.3)
                try:
                    _wrk(port, 1, "1")
                    return _wrk(port, seconds, "1", f"{d}/nginx.pid")
                finally:
                    lp.send_signal(signal.SIGINT)
                    lp.wait(timeout=60)
                    if os.path.exists(out):
                        os.unlink(out)
            finally:
                stop_nginx(ng)
                ng.wait(timeout=30)

        runners = [("untraced", untraced)]
        if floor is not None:
            runners += [("empty BPF program (floor)", lambda: untraced(True)),
                        ("learn --backend ebpf -- nginx", learned),
                        ("learn --backend ebpf --pid", attached)]
        # whole turns of the rotation (8 rounds for --reps 5): each runner runs in each place equally often,
        # and a 3 s run differs from the next by up to +-8% on a shared VM (8 pairs narrow the median
        # of the per-round ratios by ~1/5 against 5)
        reps = -(-reps // len(runners)) * len(runners)
        samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _ in runners}
        for i in range(reps):
            for name, fn in rotated(runners, i):
                samples[name].append(fn())
        header(f"1. nginx (CPU 0) serving 4 KiB to wrk -t1 -c32 (CPU 1), {seconds:g} s runs, median of {reps}",
               ["workload", "runner", "req/s", "p99 ms", "x untraced", "x floor"])
        med = {n: tuple(statistics.median(s[i] for s in v) for i in range(3)) for n, v in samples.items()}
        base = med["untraced"]
        fl = med.get("empty BPF program (floor)")
        for name, _ in runners:
            rps, p99, cpu = med[name]
            print(row(["nginx + wrk, 4 KiB", name, f"{rps:.0f}", f"{p99:.2f}", f"{rps / base[0]:.3f}",
                       f"{rps / fl[0]:.3f}" if fl and name != "untraced" else ""]), flush=True)
        for name, _ in runners:
            rps, p99, cpu = med[name]
            print(row(["  nginx CPU per request", name, f"{cpu:.1f} µs", "", f"{base[2] / cpu:.3f}",
                       f"{fl[2] / cpu:.3f}" if fl and name != "untraced" else ""]), flush=True)
        print("  (ratios: 1.000 = as fast; requests/s, then the inverse of nginx's own CPU time per request, which")
        print("   the BPF programs add to and which the other load on a shared machine disturbs less;")
        print("   the floor is the cost of attaching anything to raw_syscalls)")
        if fl:
            # the spread: each round's requests/s against the floor's in the same round (a pair shares the
            # machine's state of that moment)
            floor_runs = samples["empty BPF program (floor)"]
            for name in (n for n, _ in runners if n.startswith("learn")):
                per = sorted(s[0] / f[0] for s, f in zip(samples[name], floor_runs))
                print(row(["  x floor, round by round", name, "", "",
                           f"{statistics.median(per):.3f}", f"{per[0]:.3f}-{per[-1]:.3f}"]), flush=True)
            print("  (the same round's floor; the median of the rounds, then the lowest and the highest)")
        if floor is not None:
            # after the table's runs, apart: with the kernel's BPF statistics on (they cost each run two clock reads)
            try:
                with BpfStats():
                    got = [("empty BPF program (floor)", untraced(True, stats=True)),
                           ("empty program, sys_exit only", untraced(True, stats=True, exit_only=True)),
                           ("learn --backend ebpf -- nginx", learned(stats=True))]
            except OSError as exc:
                print(f"  (no BPF run-time figures: {exc})")
                return
            for name, r in got:
                print(row(["  BPF run time", name, f"{r[3]:.0f} ns/call", f"{r[4]:.0f} ns/req", "", ""]), flush=True)
            print("  (kernel.bpf_stats in one more run of each: the programs' own time per syscall of every task on")
            print("   the machine and per request: the floor's two (sys_enter, sys_exit), learn's one (sys_exit: it")
            print("   records a call at its return) and its rare others; an empty program's is the measurement's own)")


# ------------------------------------------------------------------ 2. the CI gate
def gate_part(reps: int, cpu: str, n: int, ebpf: bool, floor: Floor | None) -> None:
    def dd(count):   # with its transfer line (its own time of the copy loop), in the C locale
        return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]

    env = {**os.environ, "LC_ALL": "C"}

    small = 1000
    with tempfile.TemporaryDirectory(prefix="lp-bench-gate-") as d:
        backends = ["ptrace"] + (["ebpf"] if ebpf else [])
        for b in backends:
            learn = [*pin(cpu), *LEASTPRIV, "learn", "--backend", b, "-o", f"{d}/{b}.json", "--", *dd(small)]
            timed_err(learn, env=env)

        def check(b, *extra):
            return [*pin(cpu), *LEASTPRIV, "check", "--backend", b, "--baseline", f"{d}/{b}.json",
                    "--output", f"{d}/report.txt", *extra, "--"]

        runners: list[tuple[str, list[str], object]] = [("untraced", pin(cpu), None)]
        runners.append(("check --backend ptrace (fast gate)", check("ptrace"), None))
        runners.append(("check --backend ptrace --full-trace", check("ptrace", "--full-trace"), None))
        if ebpf:
            runners.append(("check --backend ebpf (fast gate)", check("ebpf"), None))
            runners.append(("check --backend ebpf --full-trace", check("ebpf", "--full-trace"), None))
            if floor is not None:
                runners.append(("empty BPF program (floor)", pin(cpu), floor))
        samples: dict[str, dict[int, list[float]]] = {r[0]: {small: [], n: []} for r in runners}
        own: dict[str, list[float]] = {r[0]: [] for r in runners}   # dd's own time of the count=n loop
        for i in range(reps):
            for name, prefix, ctx in rotated(runners, i):
                for count in (small, n):
                    if ctx is not None:
                        with ctx:
                            dt, err = timed_err([*prefix, *dd(count)], env=env)
                    else:
                        dt, err = timed_err([*prefix, *dd(count)], env=env)
                    samples[name][count].append(dt)
                    if count == n:
                        own[name].append(dd_own(err))
        header(f"2. CI gate: dd bs=1 count={n} on CPU {cpu}, baseline learned from the same dd; median of {reps}; "
               f"marginal = t(count={n}) - t(count={small})",
               ["workload", "runner", "total s", "marginal s", "x untraced", "x floor", "dd's own s", "x untraced"])
        med = {name: {c: statistics.median(v) for c, v in s.items()} for name, s in samples.items()}
        marg = {name: m[n] - m[small] for name, m in med.items()}
        base = marg["untraced"]
        fl = marg.get("empty BPF program (floor)")
        own_med = {name: statistics.median(v) for name, v in own.items()}
        for name, _, _ in runners:
            print(row([f"dd bs=1 count={n}", name, f"{med[name][n]:.3f}", f"{marg[name]:.3f}",
                       f"{marg[name] / base:.2f}",
                       f"{marg[name] / fl:.2f}" if fl and "ebpf" in name else "",
                       f"{own_med[name]:.3f}", f"{own_med[name] / own_med['untraced']:.2f}"]), flush=True)
        print("  (fast gate: a seccomp filter allows the calls the baseline explains; neither backend sees them (eBPF")
        print("   watches the trace events of the other syscalls only). x untraced of the marginal cost; then dd's")
        print("   own time of its copy loop (its transfer line), which leaves out every start-up and teardown")
        print("   instead of differencing two runs: the eBPF gate's ~1.5 s of attach and detach move by +-0.3 s)")


# ------------------------------------------------------------------ 3. whole commands vs strace
def commands(tmp: str) -> list[tuple[str, list[str]]]:
    tree = "/usr/include" if os.path.isdir("/usr/include/linux") else sys.prefix
    return [
        ("start-up: true", ["true"]),
        ("find /usr/share -name x", ["find", "/usr/share", "-name", "x"]),
        (f"tar -cf of {tree}", ["tar", "-cf", os.path.join(tmp, "out.tar"), "-C", tree, "."]),
        (f"git status (repo of {tree})", ["git", "-C", _git_repo(tmp, tree), "status", "--porcelain"]),
        # a test run of ~1 s: pure-Python test files (none of them traces: a tracee cannot ptrace)
        ("python test run: pytest, 6 files", [*PYTEST, *[str(ROOT / "tests" / f"{f}.py") for f in TEST_RUN]]),
        # pytest's own start-up and one quick file (~0.2 s): what a Python tool's fixed cost weighs most on
        ("pytest start-up: test_learner", [*PYTEST, str(ROOT / "tests" / "test_learner.py")]),
    ]


PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
TEST_RUN = ("test_learner", "test_values", "test_patterns_equal", "test_pathfacts", "test_schema_validators",
            "test_profile")


def _git_repo(tmp: str, tree: str) -> str:
    """A git repository holding a copy of ``tree`` (one commit, one file changed since)."""
    repo = os.path.join(tmp, "repo")
    if not os.path.isdir(repo):
        shutil.copytree(tree, os.path.join(repo, "src"), symlinks=True)
        git = ["git", "-C", repo, "-c", "user.email=bench@localhost", "-c", "user.name=bench"]
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
            subprocess.run([*git, *argv], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(repo, "src", "changed.h"), "w") as f:
            f.write("/* changed */\n")
    return repo


def commands_part(reps: int, cpu: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lp-bench-cmd-") as tmp:
        out = os.path.join(tmp, "p.json")
        runners = [("untraced", pin(cpu)),
                   ("strace -f -o /dev/null", [*pin(cpu), "strace", "-f", "-o", "/dev/null"]),
                   ("learn --backend ptrace", [*LEASTPRIV, "learn", "--backend", "ptrace", "--cpu", cpu,
                                               "-o", out, "--"])]
        header(f"3. whole commands on CPU {cpu} (wall time incl. start-up and writing the profile); median (min) "
               f"of {reps}", ["workload", "runner", "median s", "min s", "x untraced", "x strace", "marg x strace"])
        startup_med: dict[str, float] = {}
        for wname, cmd in commands(tmp):
            run(cmd)   # warm the page cache
            samples: dict[str, list[float]] = {r[0]: [] for r in runners}
            for i in range(reps):
                for rname, prefix in rotated(runners, i):
                    if os.path.exists(out):
                        os.unlink(out)    # each learn starts a fresh profile
                    samples[rname].append(timed([*prefix, *cmd]))
            med = {k: statistics.median(v) for k, v in samples.items()}
            startup = wname.startswith("start-up")
            if startup:
                startup_med = med
            for rname, _ in runners:
                m = med[rname]
                print(row([wname, rname, f"{m:.3f}", f"{min(samples[rname]):.3f}",
                           "" if startup else f"{m / med['untraced']:.2f}",
                           f"{m / med['strace -f -o /dev/null']:.2f}" if rname.startswith("learn") else "",
                           _marginal(med, startup_med, rname) if rname.startswith("learn") and not startup else ""]),
                      flush=True)
        print("  (marg x strace: each tracer's own start-up (its `true` row) differenced out: (learn - learn true) /")
        print("   (strace - strace true), the cost of tracing this workload's calls and of writing what they showed)")


def _marginal(med: dict[str, float], startup: dict[str, float], rname: str) -> str:
    s = "strace -f -o /dev/null"
    if not startup:
        return ""
    den = med[s] - startup[s]
    return f"{(med[rname] - startup[rname]) / den:.2f}" if den > 0 else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="0", help="CPU of parts 2 and 3 (default 0)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3, help="length of each wrk run (part 1)")
    ap.add_argument("--count", type=int, default=1000000,
                    help="dd bs=1 count of part 2 (1e6: the marginal must stand out of the eBPF gate's start-up spread)")
    ap.add_argument("--only", choices=["nginx", "gate", "commands"], default=None)
    args = ap.parse_args()
    for tool in ("strace", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (make install installs it)", file=sys.stderr)
            return 2
    # an installed package has its byte code; an editable checkout may not (PYTHONDONTWRITEBYTECODE):
    # compile it once so that the start-up measured is an installed leastpriv's
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "leastpriv")], check=False,
                   stdout=subprocess.DEVNULL)
    why = ebpf_usable()
    if why:
        print(f"bench: no eBPF rows: {why}", file=sys.stderr)
    t0 = time.monotonic()
    print(f"leastpriv bench: {os.cpu_count()} CPUs, kernel {os.uname().release}, load {os.getloadavg()[0]:.2f}; "
          f"runners interleaved, medians of {args.reps}")
    floor = Floor() if not why and args.only in (None, "nginx", "gate") else None
    try:
        if args.only in (None, "nginx"):
            nginx_part(args.reps, args.seconds, floor)
        if args.only in (None, "gate"):
            gate_part(args.reps, args.cpu, args.count, not why, floor)
        if args.only in (None, "commands"):
            commands_part(args.reps, args.cpu)
    finally:
        if floor is not None:
            floor.close()
    print(f"\n(bench took {time.monotonic() - t0:.0f} s; load now {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
