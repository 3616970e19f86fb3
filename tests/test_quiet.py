"""What learn says after a run is news, not noise."""
from __future__ import annotations

import subprocess
import sys

from .conftest import need_root, which


def test_ebpf_learn_does_not_report_the_overcommit_probe_but_does_report_a_refused_capability(tmp_path):
    """Every eBPF run sees CAP_SYS_ADMIN no-audit checks (overcommit accounting on mmap): not said. A capability
    the workload asked for with audit and was refused is said, as a warning."""
    need_root()
    res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ebpf", "-o",
                          str(tmp_path / "p.json"), "--", "ls", "/usr"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "CAP_SYS_ADMIN" not in res.stderr and "checked but not needed" not in res.stderr, res.stderr
    res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ebpf", "-o",
                          str(tmp_path / "q.json"), "--", which("setpriv"), "--reuid=65534", "--regid=65534",
                          "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "cat", "/etc/shadow"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Permission denied" in res.stderr
    assert "leastpriv: warning: capabilities asked for and refused (the workload ran without them): " \
           "CAP_DAC_OVERRIDE" in res.stderr, res.stderr
    assert "CAP_SYS_ADMIN" not in res.stderr


def test_learn_says_when_it_waits_for_a_process_that_outlived_the_command(tmp_path):
    """The command exits at once, leaving `sleep 1` behind: learn says it goes on tracing it, naming it,
    and the run ends when it does (both backends where they run)."""
    import time

    backends = ["ptrace"] + (["ebpf"] if __import__("os").geteuid() == 0 else [])
    for backend in backends:
        t = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", backend, "-o",
                              str(tmp_path / f"{backend}.json"), "--", "sh", "-c", "sleep 1.5 & sleep 0.3; exit 3"],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert res.returncode == 3, res.stderr
        line = [x for x in res.stderr.splitlines() if "still tracing" in x]
        assert line and "the command exited (3); still tracing 1 process it left running: " in line[0], res.stderr
        assert "/usr/bin/sleep" in line[0] and "Ctrl-C" in line[0]
        assert time.monotonic() - t >= 1.0
    res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                          str(tmp_path / "q.json"), "--", "sh", "-c", "exit 0"], capture_output=True, text=True)
    assert "still tracing" not in res.stderr


def test_learn_warns_when_a_run_is_another_program_than_the_profiles(tmp_path):
    out = str(tmp_path / "p.json")

    def learn(*argv):
        return subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o", out, "--",
                               *argv], capture_output=True, text=True, timeout=60)

    assert "was learned from" not in learn("ls", "/").stderr
    assert "was learned from" not in learn("ls", "/usr").stderr        # same program, other input: fine
    res = learn("cat", "/etc/hostname")
    assert res.returncode == 0
    assert f"leastpriv: warning: {out} was learned from ls; this run is cat: the profile now allows what both " \
           "need" in res.stderr, res.stderr


def test_attach_hints_agree_and_inapplicable_options_are_usage_errors(tmp_path):
    """--pid/--cgroup hints never send the user in a circle (ptrace <-> ebpf), the cgroup hint never says to
    mount cgroup2 over /sys/fs/cgroup, and --duration/--network where they do nothing are usage errors."""
    def lp(*args, **kw):
        return subprocess.run([sys.executable, "-m", "leastpriv", *args], capture_output=True, text=True,
                              timeout=60, **kw)

    res = lp("learn", "--backend", "ptrace", "--pid", "1", "--duration", "1", "-o", str(tmp_path / "p.json"))
    assert res.returncode == 2 and "needs --backend ebpf (as root)" in res.stderr
    if __import__("os").geteuid() == 0:
        res = lp("learn", "--cgroup", str(tmp_path), "--duration", "1", "-o", str(tmp_path / "c.json"))
        assert res.returncode == 2 and "not in a cgroup v2 hierarchy" in res.stderr, res.stderr
        assert "none /sys/fs/cgroup)" not in res.stderr
        # not root: attaching needs eBPF, which needs root; ptrace is not offered for it
        res = subprocess.run([which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                              "-m", "leastpriv", "learn", "--pid", "1", "--duration", "1", "-o",
                              str(tmp_path / "n.json")], capture_output=True, text=True, timeout=60, cwd="/")
        assert res.returncode == 2 and "needs root" in res.stderr and "--backend ptrace" not in res.stderr, \
            res.stderr
    for argv, opt in ((["--duration", "3"], "--duration"), (["--network", "none"], "--network")):
        res = lp("learn", *argv, "-o", str(tmp_path / "d.json"), "--", "true")
        assert res.returncode == 2 and f"{opt}: only with" in res.stderr, res.stderr


def test_counts_are_said_in_the_right_number():
    """"1 call", "1 layer", "new socket family" (not "1 calls", "1 layers", "new socket familie")."""
    from leastpriv.learner.diff import KIND_NAMES, KINDS
    from leastpriv.text import plural
    from leastpriv.ui.formats import _message

    assert plural(1, "call") == "1 call" and plural(2, "call") == "2 calls"
    assert plural(1, "layer") == "1 layer" and plural(3, "family", "families") == "3 families"
    assert set(KIND_NAMES) == set(KINDS)
    assert _message({"kind": "family", "label": "AF_NETLINK"}) == "new socket family: AF_NETLINK"
    assert _message({"kind": "arg", "label": "x"}).startswith("new argument value:")
