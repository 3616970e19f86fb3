"""leastpriv run: profiles learned from real programs, enforced by the real kernel."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leastpriv.policy import seccomp_model as sm
from leastpriv.policy.rules import Rules

from .conftest import ROOT, lp, need_root
from .learning import PYTHON, learn_httpd, learn_profile, serve, with_rules, without_syscall


def _save(profile, tmp_path, name="p.json"):
    path = tmp_path / name
    profile.save(str(path))
    return str(path)


def test_pipeline_runs_same_under_its_profile(tmp_path):
    cmd = ["sh", "-c", "ls /etc | sort | head -n 3; cat /etc/hostname | tr a-z A-Z; exit 3"]
    profile, learned = learn_profile(cmd)
    assert learned.returncode == 3
    res = lp("run", "--profile", _save(profile, tmp_path), "--", *cmd)
    assert res.returncode == 3, res.stderr
    assert res.stdout == learned.stdout


def test_removing_a_needed_syscall_fails_with_eperm(build_c, tmp_path):
    exe = str(build_c("enforce_probe"))
    (tmp_path / "in.txt").write_text("hello\n")
    profile, learned = learn_profile([exe, str(tmp_path / "in.txt")])
    assert learned.stdout.endswith("content hello\n")
    ok = lp("run", "--profile", _save(profile, tmp_path), "--", exe, str(tmp_path / "in.txt"))
    assert (ok.returncode, ok.stdout) == (0, learned.stdout), ok.stderr
    bad = lp("run", "--profile", _save(without_syscall(profile, "uname"), tmp_path, "bad.json"), "--",
             exe, str(tmp_path / "in.txt"))
    assert bad.returncode == 3
    assert bad.stdout == "uname: Operation not permitted\n"


def test_clone_with_newuser_is_denied_while_fork_works(build_c, tmp_path):
    exe = str(build_c("enforce_clone"))
    # user namespaces work here without the filter
    free = subprocess.run([exe, "userns"], capture_output=True, text=True)
    assert free.returncode == 0 and "userns ok" in free.stdout, free.stdout
    profile, learned = learn_profile([exe, "fork"])
    assert learned.stdout == "fork ok 7\n"
    rules = profile.rules
    assert "clone" not in rules.syscalls["x86_64"], "clone must be argument-constrained"
    assert any("clone" in r.names for r in rules.conditional["x86_64"])
    path = _save(profile, tmp_path)
    res = lp("run", "--profile", path, "--", exe, "userns")
    assert res.stdout == "fork ok 7\nclone(CLONE_NEWUSER): Operation not permitted\n", res.stderr
    assert res.returncode == 4


def test_complain_reports_the_missing_syscall_and_the_program_succeeds(build_c, tmp_path):
    exe = str(build_c("enforce_probe"))
    profile, learned = learn_profile([exe])
    path = _save(without_syscall(profile, "uname"), tmp_path)
    report = tmp_path / "report.json"
    res = lp("run", "--profile", path, "--complain", "--report", str(report), "--", exe)
    assert res.returncode == 0, res.stderr
    assert res.stdout == learned.stdout
    assert f"would deny: seccomp uname (x86_64) by {os.path.realpath(exe)} (1 call)" in res.stderr
    data = json.loads(report.read_text())
    assert [(d["syscall"], d["exe"]) for d in data["denials"]] == [("uname", os.path.realpath(exe))]
    # and enforcing the same profile does deny it, and says so
    res = lp("run", "--profile", path, "--", exe)
    assert res.returncode == 3
    assert f"denied: seccomp uname (x86_64) by {os.path.realpath(exe)} (1 call)" in res.stderr, res.stderr


def test_run_names_what_landlock_and_seccomp_denied(tmp_path):
    """A profile learned from `cat /etc/hostname`: `cat /etc/hostname /etc/os-release` is refused the second
    by Landlock, `uname` by Landlock (exec) or, without Landlock, by seccomp; each denial is one line naming
    kind, path or syscall, and the executable. --complain lists both and lets the command finish.
    (Files under /etc: learned paths there are never generalized into patterns.)"""
    a, b = "/etc/hostname", "/etc/os-release"
    real_b = os.path.realpath(b)
    profile, learned = learn_profile(["sh", "-c", f"cat {a}"])
    hostname = Path(a).read_text()
    assert learned.stdout == hostname
    path = _save(profile, tmp_path)
    report = tmp_path / "r.json"
    res = lp("run", "--profile", path, "--report", str(report), "--", "sh", "-c", f"cat {a} {b}; uname -s")
    assert res.stdout == hostname and "PRETTY_NAME" not in res.stdout
    lines = [x for x in res.stderr.splitlines() if "denied: " in x]
    assert f"leastpriv: warning: denied: landlock read_file {real_b} by /usr/bin/cat (openat, 1 call)" in lines, \
        res.stderr
    # Landlock refuses to execute uname (the learning run never did): named as such
    assert any(x.startswith("leastpriv: warning: denied: landlock execute /usr/bin/uname by /usr/bin/dash (execve, ")
               for x in lines), lines   # dash tries each PATH entry: /bin/uname is /usr/bin/uname here
    kinds = {d["kind"] for d in json.loads(report.read_text())["denials"]}
    assert "landlock" in kinds
    # a path the profile allows is not reported: a denial line can be absent
    ok = lp("run", "--profile", path, "--", "sh", "-c", f"cat {a}")
    assert ok.returncode == 0 and "denied" not in ok.stderr, ok.stderr

    # without Landlock, seccomp is what stops uname: named as a seccomp denial
    res = lp("run", "--profile", path, "--no-landlock", "--", "sh", "-c", f"cat {a}; uname -s")
    assert "denied: seccomp uname (x86_64) by /usr/bin/uname (1 call)" in res.stderr, res.stderr

    # --complain: everything runs, and both kinds are listed as would-be denials
    res = lp("run", "--profile", path, "--complain", "--", "sh", "-c", f"cat {a} {b}; uname -s")
    assert res.returncode == 0 and "PRETTY_NAME" in res.stdout and os.uname().sysname in res.stdout, res.stderr
    assert f"would deny: landlock read_file {real_b} by /usr/bin/cat (openat, 1 call)" in res.stderr, res.stderr
    assert "would deny: landlock execute /usr/bin/uname by /usr/bin/dash" in res.stderr
    assert "would deny: seccomp uname (x86_64) by /usr/bin/uname (1 call)" in res.stderr

def test_complain_names_each_executable(tmp_path):
    cmd = ["sh", "-c", "uname -s; true"]
    profile, learned = learn_profile(cmd)
    res = lp("run", "--profile", _save(without_syscall(profile, "uname"), tmp_path), "--complain", "--", *cmd)
    assert res.returncode == 0 and res.stdout == learned.stdout
    assert "would deny: seccomp uname (x86_64) by /usr/bin/uname (1 call)" in res.stderr


def test_python_threads_and_subprocesses(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(
        "import subprocess, threading\n"
        "out = []\n"
        "ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(sorted(out), subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n")
    cmd = [PYTHON, str(script)]
    profile, learned = learn_profile(cmd)
    assert learned.stdout == "[0, 1, 4, 9] child\n"
    res = lp("run", "--profile", _save(profile, tmp_path), "--", *cmd)
    assert (res.returncode, res.stdout) == (0, learned.stdout), res.stderr


def test_command_not_found_is_one_line_127(tmp_path):
    profile, _ = learn_profile(["true"])
    res = lp("run", "--profile", _save(profile, tmp_path), "--", "no-such-command-xyz")
    assert res.returncode == 127
    assert res.stderr.strip().splitlines() == ["leastpriv: error: no-such-command-xyz: command not found"]


def test_signal_status_and_forwarding(tmp_path):
    profile, _ = learn_profile(["sleep", "0.1"])
    path = _save(profile, tmp_path)
    # killed by a signal: 128+N
    profile_sh, _ = learn_profile(["sh", "-c", "kill -TERM $$"])
    res = lp("run", "--profile", _save(profile_sh, tmp_path, "sh.json"), "--", "sh", "-c", "kill -TERM $$")
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    # a signal sent to leastpriv reaches the workload
    proc = subprocess.Popen([sys.executable, "-m", "leastpriv", "run", "--profile", path, "--", "sleep", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60   # the workload runs (not a fixed sleep: a loaded machine starts slowly)
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
            if fh.read().strip():
                break
        time.sleep(0.05)
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 5


def test_the_supervisor_sleeps_while_the_workload_runs(tmp_path):
    """run waits for its child's end, a signal or a call to answer, never on a clock: a wake-up is a context
    switch the confined workload pays for on a shared CPU. The workload counts its parent's (run's) context
    switches over 3 s in which it calls nothing run answers, enforced and in complain mode."""
    code = ("import os, time\n"
            "f = open(f'/proc/{os.getppid()}/status')\n"     # once: each open is a call run answers
            "def n():\n"
            "    f.seek(0)\n"
            "    return sum(int(line.split()[1]) for line in f.read().splitlines() if 'ctxt_switches' in line)\n"
            "time.sleep(0.5); a = n(); time.sleep(3); print(n() - a)\n")
    argv = [PYTHON, "-c", code]
    profile, learned = learn_profile(argv)
    assert learned.returncode == 0, learned.stderr
    path = _save(profile, tmp_path)
    for flags in ((), ("--complain",)):
        res = lp("run", "--profile", path, *flags, "--", *argv)
        assert res.returncode == 0, res.stderr
        assert int(res.stdout.split()[-1]) <= 1, (flags, res.stdout)   # ~60 with a 50 ms period


def test_stdin_passes_through(tmp_path):
    profile, _ = learn_profile(["tr", "a-z", "A-Z"], input="x\n")
    res = lp("run", "--profile", _save(profile, tmp_path), "--", "tr", "a-z", "A-Z", input="hello\n")
    assert (res.returncode, res.stdout) == (0, "HELLO\n"), res.stderr


def test_bad_profile_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = lp("run", "--profile", str(bad), "--", "true")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and str(bad) in res.stderr


def test_model_is_per_abi_and_flat_for_exporters():
    rules = Rules.from_json({"syscalls": {"x86_64": ["read", "write"], "x86": ["read", "socketcall"]},
                             "conditional": {"x86_64": [{"names": ["clone"], "args": [
                                 {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]},
                             "errno": {"x86_64": [{"names": ["clone3"], "errno": "ENOSYS"}]}})
    m = sm.build(rules, arch="x86_64")
    assert m.arches == ("x86_64", "x86")   # x32: no syscalls, not listed
    assert m.allowed_names("x86") == {"read", "socketcall"}
    assert m.allowed_names("x32") == set()
    flat = m.flat()
    assert flat[0].names == ("read", "socketcall", "write") and flat[0].action == sm.ALLOW
    assert [(r.names, r.action, r.errno) for r in flat[1:]] == [(("clone",), sm.ALLOW, None),
                                                                (("clone3",), sm.ERRNO, "ENOSYS")]
    c = sm.build(rules, arch="x86_64", complain=True)
    assert (c.default_action, c.default_errno) == (sm.LOG, None)


def test_filter_is_per_abi(tmp_path):
    from leastpriv.policy.libseccomp import build_filter

    rules = Rules(syscalls={"x86_64": ("read", "write"), "x86": ("mmap2",)})
    pfc = build_filter(sm.build(rules, runtime="leastpriv")).pfc()
    x86_64, _, rest = pfc.partition("# filter for arch x86 ")
    assert '"execve"' in x86_64 and '"read"' in x86_64 and "mmap2" not in x86_64
    assert '"mmap2"' in rest and '"read"' not in rest


def test_denylist_style_enforced(build_c, tmp_path):
    from leastpriv.learner import aggregate

    exe = str(build_c("enforce_clone"))
    profile, _ = learn_profile([exe, "fork"])
    deny = aggregate.relearn(profile, {"style": "denylist"})
    assert deny.rules.style == "denylist"
    path = _save(deny, tmp_path)
    # default allow: a program the profile never saw runs
    assert lp("run", "--profile", path, "--no-landlock", "--", "sh", "-c", "echo other").stdout == "other\n"
    res = lp("run", "--profile", path, "--", exe, "userns")
    assert res.stdout == "fork ok 7\nclone(CLONE_NEWUSER): Operation not permitted\n", res.stderr
    # complain: the denied clone is reported, and it runs
    res = lp("run", "--profile", path, "--complain", "--", exe, "userns")
    assert res.returncode == 0 and "userns ok" in res.stdout
    assert "would deny: seccomp clone [flags=" in res.stderr and "CLONE_NEWUSER" in res.stderr, res.stderr


# ------------------------------------------------------------------ Landlock + capabilities: an HTTP server

@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    """A profile learned from the HTTP server serving a file, writing its log and binding a port."""
    return learn_httpd(tmp_path_factory.mktemp("httpd"))


def _run_argv(path, argv, *flags):
    return [sys.executable, "-m", "leastpriv", "run", "--profile", str(path), *flags, "--", *argv]


def test_httpd_serves_under_its_whole_profile(httpd, tmp_path):
    d, port, argv, profile = httpd
    path = _save(profile, tmp_path)
    status, answers, err = serve(_run_argv(path, argv, "--report", str(tmp_path / "r.json")), port,
                                  ["/index.html", "/missing"])
    assert status == 0, err
    assert answers[0] == (200, b"<h1>hello</h1>\n") and answers[1][0] == 404
    assert (d / "logs" / "access.log").read_text() == "GET /index.html 200\nGET /missing 404\n"
    applied = json.loads((tmp_path / "r.json").read_text())["applied"]
    assert applied[0].startswith("landlock (ABI ") and "capabilities" in applied and "seccomp" in applied
    # Landlock really confines it: a file outside the profile cannot be served
    (tmp_path / "secret.txt").write_text("secret")
    status, answers, _ = serve(_run_argv(path, argv), port, ["/" + os.path.relpath(tmp_path / "secret.txt", d / "www")])
    assert answers[0] == (404, b"open: errno 13")
    status, answers, _ = serve(_run_argv(path, argv, "--no-landlock"), port,
                                ["/" + os.path.relpath(tmp_path / "secret.txt", d / "www")])
    assert answers[0] == (200, b"secret")
    (d / "logs" / "access.log").unlink()


def test_httpd_log_write_fails_with_eacces_without_its_write_path(httpd, tmp_path):
    d, port, argv, profile = httpd
    log = str(d / "logs" / "access.log")
    files = {k: [p for p in v if p != log] for k, v in profile.rules.files.to_json().items()}
    status, answers, err = serve(_run_argv(_save(with_rules(profile, files=files), tmp_path), argv), port,
                                  ["/index.html"])
    assert status == 0, err
    assert answers[0] == (500, b"log: errno 13 Permission denied")
    assert not os.path.exists(log)


def test_httpd_bind_fails_without_its_port(httpd, tmp_path):
    d, port, argv, profile = httpd
    net = dict(profile.rules.network.to_json(), tcp_bind=[p for p in profile.rules.network.tcp("bind") if p != port])
    status, answers, err = serve(_run_argv(_save(with_rules(profile, network=net), tmp_path), argv), port, [])
    assert status == 6 and "bind: errno 13 Permission denied" in err, err
    # and the same profile without Landlock binds (the port rule is what denied it)
    status, _, err = serve(_run_argv(_save(with_rules(profile, network=net), tmp_path, "n.json"), argv,
                                      "--no-landlock"), port, [])
    assert status == 0, err


def test_capabilities_dropped_to_the_learned_set(tmp_path):
    need_root()
    profile, _ = learn_profile(["cat", "/proc/self/status"])
    assert profile.rules.capabilities == ()
    res = lp("run", "--profile", _save(profile, tmp_path), "--", "cat", "/proc/self/status")
    caps = dict(line.split(":\t") for line in res.stdout.splitlines() if line.startswith("Cap"))
    assert caps == {k: "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}, caps
    keep = with_rules(profile, capabilities=["CAP_NET_BIND_SERVICE"])
    res = lp("run", "--profile", _save(keep, tmp_path, "k.json"), "--", "cat", "/proc/self/status")
    caps = dict(line.split(":\t") for line in res.stdout.splitlines() if line.startswith("Cap"))
    bit = f"{1 << 10:016x}"
    assert (caps["CapPrm"], caps["CapEff"], caps["CapBnd"], caps["CapAmb"]) == (bit, bit, bit, "0000000000000000")
    # --no-caps leaves them
    res = lp("run", "--profile", _save(profile, tmp_path, "n.json"), "--no-caps", "--", "cat", "/proc/self/status")
    assert "CapEff:\t0000000000000000" not in res.stdout


def test_i386_program_runs_under_its_per_abi_profile(build_c, tmp_path):
    exe = str(build_c("enforce_probe", m32=True))
    profile, learned = learn_profile([exe, "/etc/hostname"])
    assert "uname" in profile.rules.syscalls["x86"]
    assert "uname" not in profile.rules.allowed("x86_64")
    res = lp("run", "--profile", _save(profile, tmp_path), "--", exe, "/etc/hostname")
    assert (res.returncode, res.stdout) == (0, learned.stdout), res.stderr
    bad = lp("run", "--profile", _save(without_syscall(profile, "uname"), tmp_path, "bad.json"), "--",
             exe, "/etc/hostname")
    assert (bad.returncode, bad.stdout) == (3, "uname: Operation not permitted\n")


def test_sigpipe_is_default_in_the_workload(tmp_path):
    # Python (leastpriv) ignores SIGPIPE; the workload must not inherit that
    cmd = ["sh", "-c", "yes | head -n 1"]
    profile, _ = learn_profile(cmd)
    res = lp("run", "--profile", _save(profile, tmp_path), "--", *cmd, timeout=30)
    assert (res.returncode, res.stdout) == (0, "y\n") and "Broken pipe" not in res.stderr, res.stderr


def test_non_root_keeps_only_learned_capabilities_through_ambient(tmp_path):
    need_root()
    import tempfile

    profile, _ = learn_profile(["cat", "/proc/self/status"])
    shared = Path(tempfile.mkdtemp(prefix="lp-caps-", dir="/tmp"))   # readable by uid 65534
    shared.chmod(0o755)
    with_cap = _save(with_rules(profile, capabilities=["CAP_NET_BIND_SERVICE"]), shared, "cap.json")
    without = _save(profile, shared, "none.json")
    for p in (with_cap, without):
        os.chmod(p, 0o644)
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               "--inh-caps=+net_bind_service,+chown", "--ambient-caps=+net_bind_service,+chown"]

    def caps(path):
        res = subprocess.run([*setpriv, sys.executable, "-m", "leastpriv", "run", "--profile", path, "--",
                              "cat", "/proc/self/status"], capture_output=True, text=True, cwd=str(ROOT))
        assert res.returncode == 0, res.stderr
        return dict(line.split(":\t") for line in res.stdout.splitlines() if line.startswith("Cap"))

    bit = f"{1 << 10:016x}"
    got = caps(with_cap)      # leastpriv holds net_bind_service and chown; the profile keeps one
    assert (got["CapEff"], got["CapPrm"], got["CapAmb"]) == (bit, bit, bit)
    got = caps(without)
    assert (got["CapEff"], got["CapPrm"], got["CapAmb"]) == ("0" * 16,) * 3
    import shutil
    shutil.rmtree(shared)


def test_run_names_capability_and_tcp_port_denials(tmp_path):
    """A server learned on an unprivileged port, run on port 81: Landlock refuses the port, and without
    Landlock the dropped CAP_NET_BIND_SERVICE does; each is named; --complain lists both; a run that stays
    within the profile names nothing (no-audit probes like the overcommit CAP_SYS_ADMIN are not denials)."""
    need_root()
    from .learning import free_port

    code = "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); print('bound')"
    port = free_port()
    profile, learned = learn_profile([PYTHON, "-c", code, str(port)])
    assert learned.stdout == "bound\n" and profile.rules.capabilities == ()
    path = _save(profile, tmp_path)
    exe = os.path.realpath(PYTHON)
    ok = lp("run", "--profile", path, "--", PYTHON, "-c", code, str(free_port()))
    assert ok.returncode != 0 and "denied: landlock bind_tcp TCP port" in ok.stderr   # another port: refused
    ok = lp("run", "--profile", path, "--", PYTHON, "-c", code, str(port))
    assert ok.returncode == 0 and "denied" not in ok.stderr, ok.stderr
    res = lp("run", "--profile", path, "--", PYTHON, "-c", code, "81")
    assert res.returncode == 1 and "PermissionError" in res.stderr
    assert f"leastpriv: warning: denied: landlock bind_tcp TCP port 81 by {exe} (bind, 1 call)" in res.stderr
    res = lp("run", "--profile", path, "--no-landlock", "--", PYTHON, "-c", code, "81")
    assert res.returncode == 1
    assert f"leastpriv: warning: denied: capability CAP_NET_BIND_SERVICE by {exe} (1 check)" in res.stderr, \
        res.stderr
    res = lp("run", "--profile", path, "--complain", "--", PYTHON, "-c", code, "81")
    assert res.returncode == 0 and res.stdout == "bound\n", res.stderr
    assert f"would deny: capability CAP_NET_BIND_SERVICE by {exe} (1 check)" in res.stderr
    assert f"would deny: landlock bind_tcp TCP port 81 by {exe}" in res.stderr
    assert "CAP_SYS_ADMIN" not in res.stderr


def test_capability_watch_leaves_no_ftrace_instance(tmp_path):
    """run's ftrace instance is removed after the run, and one left by a killed run is removed by the next."""
    need_root()
    import glob

    profile, _ = learn_profile(["true"])
    path = _save(profile, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "leastpriv", "run", "--profile", path, "--", "sleep", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)   # the orphan ends by itself
    deadline = time.monotonic() + 30
    mine = []
    while not mine and time.monotonic() < deadline:
        mine = glob.glob(f"/sys/kernel/tracing/instances/leastpriv-run-{proc.pid}-*")
        time.sleep(0.1)
    assert mine, "run did not open its ftrace instance"
    proc.kill()        # SIGKILL: no chance to clean up
    proc.wait()
    assert lp("run", "--profile", path, "--", "true").returncode == 0
    assert not glob.glob(f"/sys/kernel/tracing/instances/leastpriv-run-{proc.pid}-*")
    assert not [p for p in glob.glob("/sys/kernel/tracing/instances/leastpriv-run-*")
                if not os.path.exists(f"/proc/{p.rsplit('-', 2)[1]}")]
