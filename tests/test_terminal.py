"""The workload owns the terminal: leastpriv's status never lands in it (tested in a real pty)."""
from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

from .conftest import need_root
from .learning import PYTHON


def _in_pty(argv: list[str], timeout: float = 60, **kw) -> tuple[int, bytes]:
    """Run argv with stdin/stdout/stderr on a fresh pty; everything the terminal received, and the status."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True,
                            **kw)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:     # EIO: every writer closed the slave
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


_WORKLOAD = ("import sys, time\n"
             "sys.stdout.write('one\\n'); sys.stdout.flush()\n"
             "time.sleep(1.5)\n"           # long enough for a live status line to be drawn
             "sys.stdout.write('two \\x1b[1mbold\\x1b[0m\\n'); sys.stdout.flush()\n"
             "sys.stderr.write('err\\n')\n")


def test_learn_leaves_the_workloads_terminal_bytes_alone(tmp_path):
    """Under `learn -- CMD` on a tty, the workload's bytes arrive unchanged and contiguous; leastpriv's own lines
    come after them, and there is no spinner or cursor movement before the workload is done."""
    status, out = _in_pty([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                           str(tmp_path / "p.json"), "--", PYTHON, "-c", _WORKLOAD])
    assert status == 0, out
    # the pty turns \n into \r\n; nothing else may be in between
    expected = b"one\r\ntwo \x1b[1mbold\x1b[0m\r\nerr\r\n"
    assert expected in out, out
    before = out[:out.index(expected)]
    # before it: only whole lines of leastpriv's own (which backend), no spinner, no cursor movement
    assert before == b"" or before.endswith(b"\r\n"), before
    assert all(b"leastpriv:" in line for line in before.split(b"\r\n")[:-1]), before
    assert b"\x1b[2K" not in before and b"\x1b[1A" not in before and b"learning" not in before, before
    after = out[out.index(expected) + len(expected):]
    assert b"leastpriv:" in after and b"learning" not in after      # the summary, after the run


def test_the_status_clock_runs_between_events(tmp_path):
    """Attached (--pid) to a process that is not on our terminal and makes no syscall, the status line is shown
    on the tty and its clock keeps running; it is cleared before the summary."""
    need_root()
    sleeper = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        status, out = _in_pty([sys.executable, "-m", "leastpriv", "learn", "--backend", "ebpf", "--duration", "3",
                               "-o", str(tmp_path / "p.json"), "--pid", str(sleeper.pid)], timeout=120)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert status == 0, out
    times = [float(t) for t in re.findall(rb"learning \x1b\[2m\s*([0-9.]+)s", out)]
    assert len(set(times)) >= 5 and times == sorted(times), times
    assert times[-1] - times[0] >= 1.5, times
    # the last status frame is erased (cursor up + clear line) before leastpriv's summary
    tail = out[out.rindex(b"learning"):]
    assert b"\x1b[2K" in tail and b"leastpriv:" in tail.split(b"\x1b[2K")[-1]


def test_no_status_when_stderr_is_not_a_tty(tmp_path):
    """Piped, nothing but plain lines: no escape sequence at all."""
    res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                          str(tmp_path / "p.json"), "--", "true"], capture_output=True)
    assert res.returncode == 0 and b"\x1b" not in res.stderr + res.stdout, res.stderr


def test_a_live_status_line_shows_news_within_a_second_after_an_idle_spell(tmp_path):
    """leastpriv reads its ring without being woken for a new syscall (the workload's CPU pays for each
    wake-up), but a live status line is watched: after the workload has been idle, its new syscall shows
    within ~1 s, not at the next forced wake-up (here the process's exit, 6 s later)."""
    need_root()
    go, stamp = tmp_path / "go", tmp_path / "stamp"
    code = ("import os, time\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
            "time.sleep(3)\n"                    # leastpriv's reads back off to the longest wait
            f"open({str(stamp)!r}, 'w').write(repr(time.monotonic()))\n"
            "os.getpriority(os.PRIO_PROCESS, 0)\n"   # new: not made before by this process
            "time.sleep(6)\n")
    work = subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "leastpriv", "learn", "--backend", "ebpf", "-o",
                             str(tmp_path / "p.json"), "--pid", str(work.pid)], stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True, start_new_session=True)
    os.close(slave)
    out, seen_at = b"", None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and seen_at is None:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if not go.exists() and re.search(rb"new [a-z0-9_]+ \(x86_64\)", out):
                    go.touch()   # attached: the calls of its wait for `go` were news
                if b"getpriority" in out:
                    seen_at = time.monotonic()
            elif proc.poll() is not None:
                break
    finally:
        work.kill()
        work.wait()
        proc.wait(timeout=60)
        os.close(master)
    assert seen_at is not None, out[-3000:]
    lag = seen_at - float(stamp.read_text())
    assert lag < 2.5, (lag, out[-2000:])      # was ~6 s: shown only when the process exited
