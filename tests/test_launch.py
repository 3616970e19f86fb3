"""launch.py is the one way a workload starts: `learn --backend ptrace`, `learn --backend ebpf` and `run` give
the same workload the same exit status and output, also when leastpriv is sent a signal (launch.FORWARDED),
and a killed leastpriv leaves no workload behind."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from leastpriv import launch

from .conftest import lp, need_root

STARTERS = ("ptrace", "ebpf", "run")


def _start(how: str, argv: list[str], tmp_path, profile: str) -> subprocess.CompletedProcess:
    if how == "run":
        return lp("run", "--profile", profile, "--", *argv, timeout=60)
    return lp("learn", "--backend", how, "-o", str(tmp_path / f"{how}.json"), "--", *argv, timeout=60)


@pytest.fixture(scope="module")
def workloads(tmp_path_factory):
    d = tmp_path_factory.mktemp("launch")
    script = d / "no-shebang"
    script.write_text("echo \"script says $1\"\nexit 3\n")   # no #!: execve gives ENOEXEC, execvp runs /bin/sh
    script.chmod(0o755)
    noexec = d / "not-executable"
    noexec.write_text("#!/bin/sh\necho never\n")
    noexec.chmod(0o644)
    killed = [sys.executable, "-c", "import os, signal; print('dying', flush=True); os.kill(os.getpid(), signal.SIGTERM)"]
    return {"script": [str(script), "hello"], "missing": ["leastpriv-no-such-command-here"],
            "noexec": [str(noexec)], "killed": killed, "dir": d}


@pytest.fixture(scope="module")
def profiles(workloads):
    """A profile for `run` per workload, learned from that workload (with ptrace)."""
    need_root()
    out = {}
    for name in ("script", "killed"):
        path = str(workloads["dir"] / f"{name}.lp.json")
        res = lp("learn", "--backend", "ptrace", "-o", path, "--", *workloads[name], timeout=60)
        assert os.path.exists(path), res.stderr
        out[name] = path
    out["missing"] = out["noexec"] = out["script"]
    return out


@pytest.mark.parametrize("name,status,stdout", [
    ("script", 3, "script says hello\n"),           # ENOEXEC -> /bin/sh, as execvp does
    ("missing", 127, ""),                            # not found
    ("noexec", 126, ""),                             # found, not executable
    ("killed", 128 + signal.SIGTERM, "dying\n"),     # killed by a signal: 128+N
])
def test_every_starter_gives_the_same_status_and_output(name, status, stdout, workloads, profiles, tmp_path):
    need_root()
    seen = {}
    for how in STARTERS:
        res = _start(how, workloads[name], tmp_path, profiles[name])
        seen[how] = (res.returncode, res.stdout)
        assert res.returncode == status, f"{how}: {res.returncode} != {status}\n{res.stderr}"
        assert res.stdout == stdout, f"{how}: {res.stdout!r}\n{res.stderr}"
    assert len(set(seen.values())) == 1, seen


def _pids_running(marker: str) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("how", STARTERS)
def test_a_killed_leastpriv_leaves_no_workload_running(how, workloads, profiles, tmp_path):
    need_root()
    marker = f"{1000 + STARTERS.index(how)}.{os.getpid()}"   # a sleep nobody else runs
    argv = ["sleep", marker]
    if how == "run":
        prof = str(tmp_path / "sleep.lp.json")
        lp("learn", "--backend", "ptrace", "-o", prof, "--", "sleep", "0.1", check=True)
        cmd = ["run", "--profile", prof, "--no-seccomp", "--", *argv]   # sleep 0.1 learned no long nanosleep args
    else:
        cmd = ["learn", "--backend", how, "-o", str(tmp_path / "x.json"), "--", *argv]
    err = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "leastpriv", *cmd], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 180   # eBPF compiles its program first (slow on a loaded machine)
        while not [p for p in _pids_running(marker) if p != proc.pid] and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        err.seek(0)
        assert [p for p in _pids_running(marker) if p != proc.pid], \
            f"the workload did not start (leastpriv exited {proc.poll()}): {err.read()[-2000:]}"
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while _pids_running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _pids_running(marker)
        assert not left, f"{how}: the workload outlived a killed leastpriv: {left}"
    finally:
        err.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _pids_running(marker):
            os.kill(p, signal.SIGKILL)


TRAPS = """\
import signal, sys, time
def said(n, _frame):
    print(signal.Signals(n).name, flush=True)
    sys.exit(64 + n)
if sys.argv[1] == "trap":
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(s, said)
print("ready", flush=True)
while True:
    time.sleep(0.02)
"""


def _signalled(cmd: list[str], sig: int, err) -> tuple[int, str]:
    """Start ``cmd``, send ``sig`` to it (leastpriv, or the bare workload) once the workload said "ready" on
    stdout (no terminal anywhere: the signal comes from kill(2)), and return (exit status, stdout)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    try:
        out = b""
        deadline = time.monotonic() + 180   # eBPF compiles its program first (slow on a loaded machine)
        while not out.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    break
                out += chunk
        assert out == b"ready\n", f"{cmd}: the workload did not start: {out!r}"
        time.sleep(0.1)
        os.kill(proc.pid, sig)
        rest, _ = proc.communicate(timeout=60)
        code = proc.returncode
        return (128 - code if code < 0 else code), (out + rest).decode()   # as a shell says it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["trap", "default"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_sent_to_leastpriv_reaches_the_workload_the_same_way_under_every_starter(sig, mode, tmp_path):
    """kill -SIG of leastpriv (a service manager stopping it, `timeout`, a CI runner) does to the workload what
    it does to the workload run bare: the same handler runs (it prints the signal's name and exits 64+N), or
    it dies of it (128+N), under `learn --backend ptrace`, `learn --backend ebpf` and `run` alike."""
    need_root()
    script = tmp_path / "traps.py"
    script.write_text(TRAPS)
    argv = [sys.executable, str(script), mode]
    name = signal.Signals(sig).name
    want = (64 + sig, f"ready\n{name}\n") if mode == "trap" else (128 + sig, "ready\n")
    prof = str(tmp_path / "ptrace.json")
    lp_ = [sys.executable, "-m", "leastpriv"]
    cmds = {"bare": argv,
            "ptrace": [*lp_, "learn", "--backend", "ptrace", "-o", prof, "--", *argv],
            "ebpf": [*lp_, "learn", "--backend", "ebpf", "-o", str(tmp_path / "ebpf.json"), "--", *argv],
            "run": [*lp_, "run", "--profile", prof, "--", *argv]}   # the profile just learned, same signal
    seen = {}
    with open(tmp_path / "stderr", "w+") as err:
        for how, cmd in cmds.items():
            err.seek(0)
            err.truncate()
            seen[how] = _signalled(cmd, sig, err)
            err.seek(0)
            assert seen[how] == want, f"{how}: {seen[how]} != {want}\n{err.read()[-3000:]}"
    # a signal that asks the run to end marks the trace interrupted; SIGUSR1 is the workload's business
    for how in ("ptrace", "ebpf"):
        run = json.loads((tmp_path / f"{how}.json").read_text())["runs"][-1]
        assert run["interrupted"] == (name if sig in launch.ENDING else ""), (how, run["interrupted"])
        assert run["complete"] is (sig not in launch.ENDING), (how, run["complete"])


COUNTS = """\
import signal, time
n = {s: 0 for s in (signal.SIGINT, signal.SIGWINCH)}
for s in n:
    signal.signal(s, lambda s, _f: n.__setitem__(s, n[s] + 1))
print("ready", flush=True)
t = time.time()
while time.time() - t < 2.5:
    time.sleep(0.05)
print("ints", n[signal.SIGINT], "winches", n[signal.SIGWINCH], flush=True)
"""


def _at_a_terminal(cmd: list[str]) -> tuple[int, str]:
    """Run ``cmd`` as the foreground process group of a new pty; once the workload says "ready", type Ctrl-C
    and resize the window (the terminal signals the whole group: leastpriv and the workload), then, half a
    second later, send SIGWINCH to ``cmd``'s process with kill(2) (that one only leastpriv gets)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty, close_fds=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 180
        while b"ready" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                out += os.read(master, 4096)
        assert b"ready" in out, out.decode(errors="replace")
        os.write(master, b"\x03")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))   # SIGWINCH to the group
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGWINCH)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: the last process holding the pty's other side is gone
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        return p.wait(timeout=60), out.decode(errors="replace")
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_terminal_signal_reaches_the_workload_once_under_every_starter(tmp_path):
    """Ctrl-C and a window resize at a real terminal reach the workload (in the terminal's foreground group with
    leastpriv) exactly once, as untraced: leastpriv does not forward what the terminal delivered itself; the
    same signal sent to leastpriv with kill(2) while it is in the foreground is passed on."""
    need_root()
    script = tmp_path / "counts.py"
    script.write_text(COUNTS)
    argv = [sys.executable, str(script)]
    prof = str(tmp_path / "ptrace.json")
    lp_ = [sys.executable, "-m", "leastpriv"]
    cmds = {"bare": argv,
            "ptrace": [*lp_, "learn", "--backend", "ptrace", "-o", prof, "--", *argv],
            "ebpf": [*lp_, "learn", "--backend", "ebpf", "-o", str(tmp_path / "ebpf.json"), "--", *argv],
            "run": [*lp_, "run", "--profile", prof, "--", *argv]}
    for how, cmd in cmds.items():
        status, out = _at_a_terminal(cmd)
        assert status == 0 and "ints 1 winches 2" in out, f"{how}: exit {status}\n{out[-3000:]}"


@pytest.mark.parametrize("how", ["ptrace", "ebpf"])
def test_a_second_ending_signal_ends_a_learn_whose_workload_ignores_them(how, tmp_path):
    """`learn`: the first SIGTERM is passed on (the workload ignores it and goes on), a second one kills the
    workload (128+9), on both backends; the run is saved, marked interrupted by the first."""
    need_root()
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
            "time.sleep(60)\n")
    prof = tmp_path / "p.json"
    p = subprocess.Popen([sys.executable, "-m", "leastpriv", "learn", "--backend", how, "-o", str(prof), "--",
                          sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert p.poll() is None, "the workload ignores SIGTERM: learn goes on"
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 128 + signal.SIGKILL, err.decode(errors="replace")[-2000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    run = json.loads(prof.read_text())["runs"][-1]
    assert run["interrupted"] == "SIGTERM" and run["complete"] is False, run
