"""Learn a profile for the enforcement/export tests from a real run (leastpriv learn, or strace).

The enforcement and exporter tests need profiles learned from real programs.
When leastpriv's own ptrace backend is available they use ``leastpriv learn``
(:func:`learn_profile` prefers it); otherwise they observe the run with
``strace -f -X raw`` (a real tracer: every fact below was seen in the kernel's
answers) and fill a Recording through RecordingBuilder, the same way a backend
does. Facts: syscalls with results, tracked argument values (by the indexes
``syscalls.tracked_args`` names), files opened with access, execs, TCP
bind/connect ports, per-executable attribution.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from leastpriv import syscalls
from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile
from leastpriv.tracer.recording import Endpoint, Recording, RecordingBuilder

_START = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
_RET = re.compile(r"\)\s+=\s+(-?\w+)(?:\s+(E[A-Z0-9]+))?")
O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 3, 1, 2, 0o100, 0o1000, 0o2000


def _split_args(s: str) -> list[str]:
    """Top-level comma-separated arguments of one strace line (after the opening parenthesis)."""
    out, depth, cur, quote, esc = [], 0, "", False, False
    for ch in s:
        if quote:
            cur += ch
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            if depth == 0:
                out.append(cur.strip())
                return out
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _int(a: str) -> int | None:
    a = re.sub(r"^\w+=", "", a).strip()
    try:
        return int(a, 0)
    except ValueError:
        return None


def _str(a: str) -> str | None:
    m = re.match(r'^"(.*)"(\.\.\.)?$', a)
    return m.group(1).encode().decode("unicode_escape") if m else None


def strace_recording(argv: list[str], cwd: str | None = None, env: dict | None = None,
                     timeout: float = 60, **run_kw) -> tuple[Recording, subprocess.CompletedProcess]:
    arch = syscalls.host_arch()
    with tempfile.NamedTemporaryFile(prefix="lp-strace-", suffix=".txt", delete=False) as tf:
        out = tf.name
    try:
        proc = subprocess.run(["strace", "-f", "-qq", "-X", "raw", "-s", "4096", "-o", out, "--", *argv],
                              capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, **run_kw)
        lines = Path(out).read_text().splitlines()
    finally:
        os.unlink(out)
    b = RecordingBuilder(argv, "strace", target="cmd")
    exe_of: dict[str, str] = {}
    sock_type: dict[int, int] = {}
    pending: dict[str, tuple[str, list[str]]] = {}
    base = cwd or os.getcwd()

    def finish(pid: str, name: str, args: list[str], rest: str) -> None:
        m = _RET.search(rest)
        if not m:
            return
        ret_s, err = m.group(1), m.group(2)
        ret = -int(getattr(__import__("errno"), err)) if err and ret_s == "-1" else (_int(ret_s) or 0)
        b.result(arch, name, ret)
        if ret < 0:
            return
        if name == "execve":
            path = _str(args[0]) if args else None
            if path:
                path = os.path.normpath(os.path.join(base, path))
                b.exec_(path)
                exe_of[pid] = os.path.realpath(path)
        elif name in ("openat", "open"):
            pa, fa = (args[1], args[2]) if name == "openat" else (args[0], args[1])
            path, flags = _str(pa), _int(fa)
            if path is None or flags is None:
                return
            if not path.startswith("/"):
                path = os.path.normpath(os.path.join(base, path))
            acc = flags & O_ACCMODE
            if acc in (0, O_RDWR):
                b.file(path, "read")
            if acc in (O_WRONLY, O_RDWR) or flags & (O_TRUNC | O_APPEND):
                b.file(path, "write")
            if flags & O_CREAT:
                b.file(path, "create")
        elif name == "socket" and len(args) >= 2:
            t = _int(args[1])
            if t is not None:
                sock_type[ret] = t & 0xF
        elif name in ("bind", "connect") and len(args) >= 2:
            fd = _int(args[0])
            fam = re.search(r"sa_family=(\w+)", args[1])
            port = re.search(r"sin6?_port=htons\((\d+)\)", args[1])
            addr = re.search(r'inet_(?:addr|pton)\((?:\w+, )?"([^"]+)"', args[1])
            if fam and _int(fam.group(1)) == 2 and port:
                proto = {1: "tcp", 2: "udp", 3: "raw"}.get(sock_type.get(fd or -1, 0), "unknown")
                b.endpoint(Endpoint(name, "AF_INET", addr.group(1) if addr else "", int(port.group(1)), proto))

    for line in lines:
        m = _RESUMED.match(line)
        if m:
            pid, name, rest = m.groups()
            if pid in pending:
                pname, args = pending.pop(pid)
                finish(pid, pname, args, rest)
            continue
        m = _START.match(line)
        if not m:
            continue
        pid, name, rest = m.groups()
        unfinished = rest.endswith("<unfinished ...>")
        args = _split_args(rest.removesuffix("<unfinished ...>").rstrip())
        b.syscall(arch, name)
        b.attribute(exe_of.get(pid, os.path.realpath(argv[0]) if "/" in argv[0] else argv[0]), arch, name)
        spec = syscalls.tracked_args(arch, name)
        if spec is not None and len(args) > max(spec.indexes):
            vals = tuple(_int(args[i]) for i in spec.indexes)
            if None not in vals:
                b.arg(arch, name, vals)
        if unfinished:
            pending[pid] = (name, args)
        else:
            finish(pid, name, args, rest)
    status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return b.build(status, True), proc


def ptrace_available() -> bool:
    return os.environ.get("LP_TEST_TRACER", "") != "strace" and \
        Path(__file__).resolve().parent.parent.joinpath("leastpriv", "tracer", "ptrace.py").exists()


def learn_profile(argv: list[str], path: str | Path | None = None, runs: int = 1, args_mode: str = "safe",
                  **kw) -> tuple[Profile, subprocess.CompletedProcess]:
    """Learn a profile from ``runs`` real runs of argv (``leastpriv learn --backend ptrace`` when the
    backend exists, else strace); saved to ``path`` when given. Returns the workload's last run too
    (its stdout; stderr has leastpriv's own lines mixed in when learned with leastpriv)."""
    if ptrace_available():
        tmp = None
        if path is None:
            fd, tmp = tempfile.mkstemp(prefix="lp-learn-", suffix=".json")
            os.close(fd)
            os.unlink(tmp)
        target = str(path or tmp)
        proc = None
        try:
            for _ in range(runs):
                kw.setdefault("capture_output", True)
                kw.setdefault("text", True)
                proc = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace",
                                       "-o", target, "--", *argv], **kw)
            profile = Profile.load(target)
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
        if args_mode != profile.rules.get("args_mode", "safe"):
            profile = aggregate.relearn(profile, {"args": args_mode})
            if path is not None:
                profile.save(str(path))
        return profile, proc
    recs = []
    proc = None
    for _ in range(runs):
        rec, proc = strace_recording(argv, **kw)
        recs.append(rec)
    profile = aggregate.learn(recs, {"args": args_mode})
    if path is not None:
        profile.save(str(path))
    return profile, proc


def with_rules(profile: Profile, **changes) -> Profile:
    """The same profile with some rules replaced (tests remove a syscall, a path, a port)."""
    rules = {**profile.rules, **changes}
    return Profile(runs=profile.runs, facts=profile.facts, rules=rules)


def without_syscall(profile: Profile, name: str) -> Profile:
    rules = dict(profile.rules)
    rules["syscalls"] = {a: [n for n in v if n != name] for a, v in rules["syscalls"].items()}
    rules["conditional"] = {a: [r for r in v if name not in r["names"]] for a, v in rules.get("conditional", {}).items()}
    return Profile(runs=profile.runs, facts=profile.facts, rules=rules)


# ------------------------------------------------------------------ a small HTTP server, learned for real

HTTPD = Path(__file__).resolve().parent / "workloads" / "enforce_httpd.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def serve(argv: list[str], port: int, requests: list[str]) -> tuple[int, list[tuple[int, bytes]], str]:
    """Start a server command, wait for 'listening', make the requests, then GET /quit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "listening":
            proc.wait(timeout=30)
            return proc.returncode, [], line + proc.stdout.read() + proc.stderr.read()
        answers = [get(port, r) for r in requests]
        answers.append(get(port, "/quit"))
        proc.wait(timeout=30)
        return proc.returncode, answers, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def learn_httpd(d: Path) -> tuple[Path, int, list[str], Profile]:
    """Learn the HTTP server (tests/workloads/enforce_httpd.py) in ``d``: serves www/index.html, appends to
    logs/access.log, binds a free port. Returns (dir, port, argv, profile); the log is removed afterwards."""
    (d / "www").mkdir()
    (d / "www" / "index.html").write_text("<h1>hello</h1>\n")
    (d / "logs").mkdir()
    port = free_port()
    argv = [PYTHON, str(HTTPD), str(d / "www"), str(d / "logs" / "access.log"), str(port)]
    path = d / "httpd.json"
    status, answers, err = serve([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                                  str(path), "--", *argv], port, ["/index.html"])
    assert status == 0 and answers[0] == (200, b"<h1>hello</h1>\n"), err
    profile = Profile.load(str(path))
    assert port in profile.rules["network"]["tcp_bind"]
    assert str(d / "logs" / "access.log") in profile.rules["files"]["write"]
    (d / "logs" / "access.log").unlink()
    return d, port, argv, profile


PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
