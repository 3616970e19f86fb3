"""The ptrace backend, on real programs and the real kernel: learn, then prove with `leastpriv run`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leastpriv.kernel import constants
from leastpriv.learner.profile import Profile
from leastpriv.tracer.recording import Recording

from .conftest import WORKLOADS, lp, need_root
from .learning import PYTHON, without_syscall

EPERM = os.strerror(1)   # "Operation not permitted"


def learn(tmp_path: Path, *cmd: str, profile: str = "p.json", env: dict | None = None, extra=()) -> tuple:
    """`leastpriv learn --backend ptrace` -> (completed process, Recording, profile path)."""
    prof = tmp_path / profile
    rec_path = tmp_path / f"rec-{time.monotonic_ns()}.json"
    proc = lp("learn", "--backend", "ptrace", "-o", str(prof), "--save-recording", str(rec_path), *extra, "--", *cmd,
              env={**os.environ, **(env or {})})
    rec = Recording.load(str(rec_path)) if rec_path.exists() else None
    return proc, rec, str(prof)


def calls(rec: Recording, arch: str = "x86_64") -> set[str]:
    return set(rec.syscalls.get(arch, {}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ facts


def test_shell_pipeline_follows_every_process(tmp_path):
    proc, rec, _ = learn(tmp_path, "sh", "-c", "ls /etc | sort | head -n 3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == subprocess.run(["sh", "-c", "ls /etc | sort | head -n 3"], capture_output=True,
                                         text=True).stdout
    assert rec.complete and rec.exit_status == 0 and rec.backend == "ptrace"
    assert {"/usr/bin/ls", "/usr/bin/sort", "/usr/bin/head", "/usr/bin/dash"} <= set(rec.execs)
    assert {"execve", "pipe2", "clone", "getdents64", "wait4", "openat"} <= calls(rec)
    assert "getdents64" in rec.executables["/usr/bin/ls"]["x86_64"]
    assert "getdents64" not in rec.executables["/usr/bin/sort"]["x86_64"]
    assert "/etc" in rec.files and "read" in rec.files["/etc"]
    assert rec.files["/usr/lib/x86_64-linux-gnu/libc.so.6"] == frozenset({"read"})
    # only the workload: nothing of the Python launcher between fork and exec
    assert "/usr/bin/python3" not in str(rec.executables) and not any("python" in e for e in rec.execs)
    assert rec.syscalls["x86_64"]["execve"].count == 4
    assert rec.uid == os.getuid()
    # results are sampled: every syscall's first calls are observed, failures named
    for name, st in rec.syscalls["x86_64"].items():
        if name not in ("exit_group", "exit", "rt_sigreturn"):
            assert st.results >= min(st.count, 8), (name, st)
    assert rec.syscalls["x86_64"]["access"].errnos.get("ENOENT")   # ld.so's /etc/ld.so.preload probe
    assert not rec.notes


def test_coreutils_files_with_access_kinds(tmp_path):
    src, dst = tmp_path / "src.txt", tmp_path / "dir" / "dst.txt"
    src.write_text("data\n")
    proc, rec, _ = learn(tmp_path, "sh", "-c", f"mkdir {tmp_path}/dir && cp {src} {dst} && cat {dst} "
                                               f"&& rm {src} && cat /nonexistent-lp 2>/dev/null; exit 0")
    assert proc.returncode == 0 and proc.stdout == "data\n", proc.stderr
    assert "read" in rec.files[str(src)]
    assert rec.files[str(tmp_path / "dir")] == frozenset({"create"})
    assert {"create", "write"} <= rec.files[str(dst)]
    assert "write" in rec.files[str(src)]              # unlinked by rm
    assert "/nonexistent-lp" not in rec.files          # a failed open is not a file the program used
    assert rec.syscalls["x86_64"]["openat"].errnos.get("ENOENT")
    assert {"/usr/bin/cp", "/usr/bin/cat", "/usr/bin/rm", "/usr/bin/mkdir"} <= set(rec.execs)


def test_threads_forks_clone3_orphans_int80_and_unknown_numbers(build_c, tmp_path):
    exe = str(build_c("lp_tasks"))
    proc, rec, _ = learn(tmp_path, exe, str(tmp_path), "unknown")
    assert proc.returncode == 0 and proc.stdout == "tasks ok\n", proc.stderr
    x = calls(rec)
    # thread (getcpu), fork child (umask, getpgid), clone3 child (sched_yield), vfork child's exec (/bin/true),
    # and the orphaned grandchild that outlived its parent (getpriority, its file)
    assert {"getcpu", "umask", "getpgid", "clone3", "sched_yield", "vfork", "getpriority"} <= x
    assert "/usr/bin/true" in rec.execs
    assert "write" in rec.files[str(tmp_path / "orphan.txt")] and "create" in rec.files[str(tmp_path / "orphan.txt")]
    # the int $0x80 call of a 64-bit program is an i386 getpid, recorded under x86
    assert rec.syscalls["x86"]["getpid"].count == 1
    assert rec.executables[os.path.realpath(exe)]["x86"] == frozenset({"getpid"})
    # a syscall number with the x32 bit is an x32 call, named in that ABI (ENOSYS if the kernel lacks x32)
    assert rec.syscalls["x32"]["getpid"].count == 1
    # an unknown number is recorded and reported, not dropped
    assert rec.unknown_syscalls["x86_64"] == (1000,)
    assert rec.syscalls["x86_64"]["#1000"].errnos == {"ENOSYS": 1}
    assert "unknown syscall numbers on x86_64: 1000" in proc.stderr
    # tracked argument values
    a = rec.args["x86_64"]
    assert (2, 2, 0) in a["socket"]                       # AF_INET, SOCK_DGRAM, 0
    assert (15,) in a["prctl"]                            # PR_SET_NAME
    assert (0,) in a["kill"]
    assert any(v[0] & 4 for v in a["mmap"])               # PROT_EXEC from the loader
    assert a["clone"] and all(v[0] & constants.namespace_mask() == 0 for v in a["clone"])   # forks: no namespaces


def test_i386_program_is_recorded_as_x86(build_c, tmp_path):
    exe = str(build_c("lp_i386", m32=True))
    proc, rec, _ = learn(tmp_path, exe, "/etc/hostname")
    assert proc.returncode == 0 and proc.stdout == "i386 32-bit read 1\n", proc.stderr
    assert set(rec.syscalls["x86_64"]) == {"execve"}      # the launcher's exec only
    x86 = calls(rec, "x86")
    assert {"mmap2", "uname", "openat", "read", "set_thread_area"} <= x86
    assert "mmap" not in x86 and "arch_prctl" not in x86
    assert rec.executables[os.path.realpath(exe)]["x86"] == frozenset(x86)
    assert (5,) in rec.args["x86"]["mmap2"]               # PROT_READ|PROT_EXEC
    assert rec.files["/usr/lib32/libc.so.6"] == frozenset({"read"})


def test_python_threads_and_subprocesses(tmp_path):
    proc, rec, _ = learn(tmp_path, PYTHON, str(WORKLOADS / "lp_pytasks.py"), str(tmp_path))
    assert proc.returncode == 0 and proc.stdout == "threads [0, 1, 2] sub x 0\n", proc.stderr
    for i in range(3):
        assert {"write", "create"} <= rec.files[str(tmp_path / f"thread{i}.txt")]
    assert {"/usr/bin/dash", "/usr/bin/cat"} <= set(rec.execs)
    assert "/etc/hostname" in rec.files
    clone_thread = constants.value("clone", "CLONE_THREAD")
    assert "clone3" in calls(rec) or any(v[0] & clone_thread for v in rec.args["x86_64"]["clone"])
    assert rec.executables[os.path.realpath(PYTHON)]["x86_64"] >= {"wait4", "futex"}


def test_server_and_client_endpoints(tmp_path):
    port = free_port()
    sock = tmp_path / "lp.sock"
    proc, rec, _ = learn(tmp_path, PYTHON, str(WORKLOADS / "lp_net.py"), str(port), f"lp-abs-{port}", str(sock))
    assert proc.returncode == 0 and proc.stdout == "client got pong\nserver got ping\n", proc.stderr
    eps = {(e.op, e.family, e.address, e.port, e.proto) for e in rec.network}
    assert ("bind", "AF_INET", "127.0.0.1", port, "tcp") in eps
    assert ("connect", "AF_INET", "127.0.0.1", port, "tcp") in eps
    assert ("bind", "AF_UNIX", f"@lp-abs-{port}", None, "dgram") in eps
    assert ("bind", "AF_UNIX", str(sock), None, "stream") in eps
    socks = rec.args["x86_64"]["socket"]
    assert any(v[0] == socket.AF_INET and v[1] & 0xF == socket.SOCK_STREAM for v in socks)
    assert any(v[0] == socket.AF_UNIX and v[1] & 0xF == socket.SOCK_DGRAM for v in socks)
    assert (1, 2) in rec.args["x86_64"]["setsockopt"]     # SOL_SOCKET, SO_REUSEADDR


def test_job_control_and_signals_behave_as_untraced(tmp_path):
    cmd = [PYTHON, str(WORKLOADS / "lp_jobctl.py")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    proc, rec, _ = learn(tmp_path, *cmd)
    assert proc.stdout == plain.stdout == "stopped True True\nchild resumed\nchild exit 7 usr1 True\n", proc.stderr
    assert (signal.SIGSTOP,) in rec.args["x86_64"]["kill"]


def test_stdin_passes_through(tmp_path):
    proc = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "p.json"), "--", "tr", "a-z", "A-Z",
              input="hello stdin\n")
    assert proc.returncode == 0 and proc.stdout == "HELLO STDIN\n", proc.stderr


@pytest.mark.parametrize("script,status", [("exit 3", 3), ("kill -TERM $$", 143), ("true", 0)])
def test_exit_status_passthrough(tmp_path, script, status):
    proc, rec, _ = learn(tmp_path, "sh", "-c", script)
    assert proc.returncode == status, proc.stderr
    assert rec.exit_status == status and rec.complete


def test_command_not_found_and_not_executable(tmp_path):
    proc = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "p.json"), "--", "no-such-command-lp")
    assert proc.returncode == 127
    assert proc.stderr.strip().splitlines() == ["leastpriv: error: no-such-command-lp: command not found"]
    noexec = tmp_path / "data.txt"
    noexec.write_text("not a program\n")
    noexec.chmod(0o644)
    proc = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "p.json"), "--", str(noexec))
    assert proc.returncode == 126 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.json").exists()


def test_fallback_without_seccomp_sees_the_same(build_c, tmp_path):
    exe = str(build_c("lp_i386", m32=True))
    _, fast, _ = learn(tmp_path, exe, profile="a.json")
    proc, slow, _ = learn(tmp_path, exe, profile="b.json", env={"LEASTPRIV_PTRACE_NO_SECCOMP": "1"})
    assert proc.returncode == 0 and proc.stdout == "i386 32-bit read 1\n"
    assert any("PTRACE_SYSCALL" in n for n in slow.notes) and not fast.notes
    assert "PTRACE_SYSCALL" in proc.stderr
    for arch in ("x86", "x86_64"):
        assert {n: s.count for n, s in slow.syscalls[arch].items()} == {n: s.count for n, s in fast.syscalls[arch].items()}
    # two stops per syscall: every result is seen (but exit_group never returns)
    assert all(s.results == s.count for n, s in slow.syscalls["x86"].items() if n != "exit_group")
    assert slow.files == fast.files and slow.args == fast.args


def test_two_runs_give_the_union_and_who_added_what(build_c, tmp_path):
    exe = str(build_c("lp_tasks"))
    p1, r1, prof = learn(tmp_path, exe, str(tmp_path))
    p2, r2, _ = learn(tmp_path, exe, str(tmp_path), "unknown")
    assert p1.returncode == p2.returncode == 0
    assert "#1000" not in r1.syscalls["x86_64"] and "#1000" in r2.syscalls["x86_64"]
    profile = Profile.load(prof)
    assert [r["id"] for r in profile.runs] == [r1.id, r2.id]
    assert profile.runs[1]["added"]["syscalls"] == {"x86_64": ["#1000"], "x32": ["getpid"]}
    assert "getcpu" in profile.runs[0]["added"]["syscalls"]["x86_64"]
    p3, _, _ = learn(tmp_path, exe, str(tmp_path))
    assert "this run added nothing new" in p3.stderr


# ------------------------------------------------------------------ Ctrl-C


def _procs_with(marker: str, exact: bool = False) -> list[tuple[int, str]]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (cmdline.strip() == marker if exact else marker in cmdline) and "pytest" not in cmdline:
            out.append((int(d), state))
    return out


def _start_learn(tmp_path, *cmd):
    p = subprocess.Popen([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                          str(tmp_path / "p.json"), "--", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline() == "ready\n"
    return p


def test_sigint_saves_an_incomplete_run(tmp_path):
    marker = f"lp-sigint-{os.getpid()}-a"
    p = _start_learn(tmp_path, PYTHON, "-c", "import sys, time; print('ready', flush=True); time.sleep(30)", marker)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err          # the workload died of KeyboardInterrupt (128 + SIGINT)
    assert "KeyboardInterrupt" in err and "INCOMPLETE (SIGINT)" in err
    run = Profile.load(str(tmp_path / "p.json")).runs[0]
    assert run["complete"] is False and run["interrupted"] == "SIGINT" and run["exit_status"] == 130
    assert _procs_with(marker) == []


def test_second_sigint_kills_a_workload_that_ignores_it(tmp_path):
    marker = f"lp-sigint-{os.getpid()}-b"
    p = _start_learn(tmp_path, "sh", "-c", f"trap '' INT; echo ready; sleep 30 & sleep 30; echo {marker}")
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert p.poll() is None, "the workload ignores SIGINT: learn goes on"
    assert _procs_with("sleep 30", exact=True), "workload still running"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 137, err
    run = Profile.load(str(tmp_path / "p.json")).runs[0]
    assert run["complete"] is False and run["interrupted"] == "SIGINT"
    time.sleep(0.2)
    assert _procs_with(marker) == [] and _procs_with("sleep 30", exact=True) == []


def test_sigterm_is_forwarded(tmp_path):
    p = _start_learn(tmp_path, "sh", "-c", "echo ready; exec sleep 30")
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 143, err
    assert Profile.load(str(tmp_path / "p.json")).runs[0]["interrupted"] == "SIGTERM"


# ------------------------------------------------------------------ learn, then prove with `run`

# (argv, a syscall the workload needs, what it says when that syscall fails with EPERM)
def _e2e_cases(build_c, tmp_path):
    port = free_port()
    return {
        "pipeline": (["sh", "-c", "ls /etc | sort | head -n 3"], "getdents64", f"ls: reading directory '/etc': {EPERM}"),
        "coreutils": (["ls", "-l", "/etc/hostname"], "statx", f"ls: cannot access '/etc/hostname': {EPERM}"),
        "tasks-thread": ([str(build_c("lp_tasks")), str(tmp_path)], "getcpu", f"getcpu: {EPERM}"),
        "tasks-orphan": ([str(build_c("lp_tasks")), str(tmp_path)], "getpriority", f"getpriority: {EPERM}"),
        "python": ([PYTHON, str(WORKLOADS / "lp_pytasks.py"), str(tmp_path)], "pipe2", "[Errno 1]"),
        "net": ([PYTHON, str(WORKLOADS / "lp_net.py"), str(port), f"lp-e2e-{port}", str(tmp_path / "s.sock")],
                "bind", "[Errno 1]"),
        "i386": ([str(build_c("lp_i386", m32=True))], "uname", f"uname: {EPERM}"),
    }


@pytest.mark.parametrize("case", ["pipeline", "coreutils", "tasks-thread", "tasks-orphan", "python", "net", "i386"])
def test_learned_profile_runs_the_workload_and_a_missing_syscall_is_eperm(build_c, tmp_path, case):
    argv, needed, says = _e2e_cases(build_c, tmp_path)[case]
    learned, rec, prof = learn(tmp_path, *argv)
    assert learned.returncode == 0, learned.stderr
    assert needed in rec.syscalls.get("x86", {}) or needed in rec.syscalls["x86_64"]
    ran = lp("run", "--profile", prof, "--", *argv)
    assert (ran.returncode, ran.stdout) == (learned.returncode, learned.stdout), ran.stderr
    bad = tmp_path / "bad.json"
    without_syscall(Profile.load(prof), needed).save(str(bad))
    denied = lp("run", "--profile", str(bad), "--", *argv)
    assert says in denied.stdout + denied.stderr, (denied.stdout, denied.stderr)
    assert (denied.returncode, denied.stdout) != (learned.returncode, learned.stdout)


def test_ctrl_c_at_a_terminal_reaches_the_workload_once(tmp_path):
    """In a real pty: the tty sends SIGINT to the foreground group (leastpriv and the workload); not forwarded twice."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    code = ("import signal, time\n"
            "n = [0]\n"
            "signal.signal(signal.SIGINT, lambda s, f: n.__setitem__(0, n[0] + 1))\n"
            "print('ready', flush=True)\n"
            "t = time.time()\n"
            "while time.time() - t < 1.5: time.sleep(0.05)\n"
            "print('ints', n[0], flush=True)\n")
    p = subprocess.Popen([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                          str(tmp_path / "p.json"), "--", PYTHON, "-c", code],
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.time() + 20
    while b"ready" not in out and time.time() < deadline:
        out += os.read(master, 4096)
    os.write(master, b"\x03")
    import select
    deadline = time.time() + 20
    while time.time() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=20)
    os.close(master)
    assert b"ints 1" in out, out.decode(errors="replace")
    assert p.returncode == 0
    run = Profile.load(str(tmp_path / "p.json")).runs[0]
    assert run["complete"] is False and run["interrupted"] == "SIGINT"


def test_workload_dies_with_leastpriv(tmp_path):
    """PTRACE_O_EXITKILL: a SIGKILLed leastpriv leaves no workload behind, stopped or running."""
    marker = f"lp-exitkill-{os.getpid()}"
    p = _start_learn(tmp_path, "sh", "-c", f"echo ready; sleep 31.7 & sleep 31.7; echo {marker}")
    try:
        time.sleep(0.2)
        assert _procs_with(marker) and len(_procs_with("sleep 31.7", exact=True)) == 2
    finally:
        p.kill()
        p.wait(timeout=10)
    deadline = time.time() + 5
    while (_procs_with(marker) or _procs_with("sleep 31.7", exact=True)) and time.time() < deadline:
        time.sleep(0.05)
    assert _procs_with(marker) == [] and _procs_with("sleep 31.7", exact=True) == []


def test_cpu_placement(tmp_path):
    code = "import os; print(sorted(os.sched_getaffinity(0)))"
    allowed = sorted(os.sched_getaffinity(0))
    last = str(allowed[-1])
    proc = lp("learn", "--backend", "ptrace", "--cpu", last, "-o", str(tmp_path / "p.json"), "--", PYTHON, "-c", code)
    assert proc.returncode == 0 and proc.stdout == f"[{last}]\n", proc.stderr
    proc = lp("learn", "--backend", "ptrace", "--cpu", "any", "-o", str(tmp_path / "p.json"), "--", PYTHON, "-c", code)
    assert proc.stdout == f"{allowed}\n"
    proc = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "p.json"), "--", PYTHON, "-c", code)
    assert len(json.loads(proc.stdout)) == 1          # default "same": one CPU, the tracer's
    proc = lp("learn", "--backend", "ptrace", "--cpu", "4096", "-o", str(tmp_path / "p.json"), "--", "true")
    assert proc.returncode == 2 and "--cpu: CPU 4096 is not available" in proc.stderr


def test_progress_is_reported():
    from leastpriv.tracer.base import Command, TraceOptions
    from leastpriv.tracer.ptrace import PtraceBackend
    seen = []
    # progress comes every 0.25 s: the run must outlast that on an idle machine too (one stop per call is fast)
    rec = PtraceBackend().trace(Command(("dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=250000", "status=none")),
                                TraceOptions(progress=seen.append))
    assert rec.complete and rec.exit_status == 0
    assert rec.syscalls["x86_64"]["read"].count >= 250000 and rec.syscalls["x86_64"]["write"].count >= 250000
    assert rec.syscalls["x86_64"]["write"].results < 100      # sampled, not every result
    assert seen and {"processes", "syscalls", "distinct"} <= set(seen[-1])
    assert seen[-1]["processes"] == 1 and seen[-1]["syscalls"] > 1000


def test_without_cap_sys_admin_no_new_privs_is_set_and_said(tmp_path):
    need_root()
    import shutil as _sh
    if _sh.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    rec_path = tmp_path / "r.json"
    proc = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", sys.executable, "-m",
                           "leastpriv", "learn", "--backend", "ptrace", "-o", str(tmp_path / "p.json"),
                           "--save-recording", str(rec_path), "--", "grep", "-E", "NoNewPrivs|Seccomp:",
                           "/proc/self/status"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "NoNewPrivs:\t1" in proc.stdout and "Seccomp:\t2" in proc.stdout
    rec = Recording.load(str(rec_path))
    assert not any("no_new_privs" in n for n in rec.notes), rec.notes   # grep gains nothing by exec: no noise
    assert "prctl" not in rec.syscalls["x86_64"]      # the launcher's prctl/seccomp calls are not the workload's
    # a set-group-ID program does lose its privilege: that is said, naming it
    proc = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", sys.executable, "-m",
                           "leastpriv", "learn", "--backend", "ptrace", "-o", str(tmp_path / "p2.json"),
                           "--", "sh", "-c", "expiry -c; grep -c . /etc/hostname"],
                          capture_output=True, text=True, timeout=60)
    lines = [x for x in proc.stderr.splitlines() if "no_new_privs" in x]
    assert len(lines) == 1 and "/usr/bin/expiry is set-group-ID shadow but ran without it" in lines[0], proc.stderr
    # as root with CAP_SYS_ADMIN no_new_privs is left alone
    proc, rec, _ = learn(tmp_path, "grep", "NoNewPrivs", "/proc/self/status", profile="q.json")
    assert proc.stdout == "NoNewPrivs:\t0\n" and not rec.notes


def test_clone3_flags_are_read_and_allow_the_clone_fallback(build_c, tmp_path):
    """clone3 hides its flags behind a pointer: the tracer reads them, so that the profile's clone rule
    (clone3 -> ENOSYS, glibc falls back to clone) allows the namespace flags the workload used."""
    need_root()   # CLONE_NEWUSER as root always works here; unprivileged user namespaces may be off
    exe = str(build_c("lp_clone3ns"))
    proc, rec, prof = learn(tmp_path, exe)
    assert proc.returncode == 0 and proc.stdout == "userns child ok\n", proc.stderr
    newuser = constants.value("clone", "CLONE_NEWUSER")
    assert (newuser,) in rec.args["x86_64"]["clone3"]
    ran = lp("run", "--profile", prof, "--", exe)
    assert (ran.returncode, ran.stdout) == (0, "userns child ok\n"), ran.stderr


def test_a_signal_whose_handler_runs_inside_another_ones_starts_one_timer(monkeypatch):
    """Ctrl-C and a window resize reach leastpriv at once: Python may run the second signal's handler inside
    the first one's (at any Python call there, e.g. a Timer's daemon setter). Each handler starts the timer
    it made, never one the other made (a Timer started twice raised RuntimeError, which ended a trace), and
    the latest timer is the one left to fire."""
    import threading

    from leastpriv import launch
    from leastpriv.tracer import ptrace
    from leastpriv.tracer.base import TraceOptions

    session = ptrace._Session(["true"], "/bin/true", TraceOptions())
    sleeper = subprocess.Popen(["sleep", "30"])        # the "workload" a timer would forward to
    session.root = sleeper.pid
    monkeypatch.setattr(launch, "sent_by_terminal", lambda sig: True)
    made = []

    class Timer(threading.Timer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

        @property
        def daemon(self):
            return threading.Thread.daemon.fget(self)

        @daemon.setter
        def daemon(self, value):
            threading.Thread.daemon.fset(self, value)
            if len(made) == 1:          # the first handler's timer: the second signal comes now
                session._on_signal(signal.SIGWINCH, None)

    monkeypatch.setattr(threading, "Timer", Timer)
    try:
        session._on_signal(signal.SIGINT, None)
        first, second = made
        assert session.deferred is first and first.is_alive()
        assert second.finished.is_set()           # started by its handler, cancelled by the outer one
        assert session.interrupted == "SIGINT"
    finally:
        for t in made:
            t.cancel()
        sleeper.kill()
        sleeper.wait()
