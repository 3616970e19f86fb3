"""Helpers for tests that need a profile learned from a real program.

They run the real ``leastpriv learn --backend ptrace`` (unprivileged, so the
same everywhere) and read the profile it writes; the HTTP server helpers
start tests/workloads/enforce_httpd.py on 127.0.0.1 and talk to it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile
from leastpriv.policy.rules import Rules

from .conftest import WORKLOADS


def learn_profile(argv: list[str], path: str | Path | None = None, runs: int = 1, args_mode: str = "safe",
                  **kw) -> tuple[Profile, subprocess.CompletedProcess]:
    """Learn a profile from ``runs`` real runs of argv with ``leastpriv learn --backend ptrace``;
    saved to ``path`` when given. Returns the workload's last run too
    (its stdout; stderr has leastpriv's own lines mixed in when learned with leastpriv)."""
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
    if args_mode != profile.rules.args_mode:
        profile = aggregate.relearn(profile, {"args": args_mode})
        if path is not None:
            profile.save(str(path))
    return profile, proc


def with_rules(profile: Profile, **changes) -> Profile:
    """The same profile with some rules replaced, given in their JSON form (tests remove a syscall, a path,
    a port, or write hostile values)."""
    return Profile(runs=profile.runs, facts=profile.facts, rules=Rules.from_json({**profile.rules.to_json(), **changes}))


def without_syscall(profile: Profile, name: str) -> Profile:
    rules = profile.rules
    return Profile(runs=profile.runs, facts=profile.facts, rules=rules.replace(
        syscalls={a: tuple(n for n in v if n != name) for a, v in rules.syscalls.items()},
        conditional={a: tuple(r for r in v if name not in r.names) for a, v in rules.conditional.items()}))


# ------------------------------------------------------------------ a small HTTP server, learned for real

HTTPD = WORKLOADS / "enforce_httpd.py"


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
    assert port in profile.rules.network.tcp("bind")
    assert str(d / "logs" / "access.log") in profile.rules.files.write
    (d / "logs" / "access.log").unlink()
    return d, port, argv, profile


PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
