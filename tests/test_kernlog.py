"""learn --from-log: seccomp log records (audit type 1326) back into a profile.

The first test makes real records: a workload (64-bit and i386 builds) runs
under ``leastpriv run --complain-log`` (SCMP_ACT_LOG) with a profile that
lacks two syscalls it makes once each; the kernel logs them; they are read
back from /dev/kmsg as root. The kernel log is shared with everything on the
machine (other tests log seccomp records too), so records are told apart by
the workload's unique executable path and a time window taken here.
The other tests feed the parser the formats other tools print, built from
the kernel's own record text.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from leastpriv.fileio import copy_json
from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile
from leastpriv.tracer.kernlog import LogFilter, parse, parse_since

from .conftest import lp, need_root
from .learning import learn_profile

KMSG = Path("/dev/kmsg")


def _kmsg_seccomp_lines() -> list[str]:
    """The seccomp records and rate-limit notices now in the kernel's ring buffer, as /dev/kmsg gives them."""
    fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    out = []
    try:
        while True:
            try:
                data = os.read(fd, 16384)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue
            line = data.decode("utf-8", "replace").rstrip("\n")
            if "type=1326" in line or "callbacks suppressed" in line:
                out.append(line.split("\n")[0])
    finally:
        os.close(fd)
    return out


def never_seen(profile: Profile, *names: str) -> Profile:
    """The profile as if its runs had never made these syscalls (facts and rules), e.g. a profile learned
    in CI that misses what production does."""
    facts = copy_json(dict(profile.facts))
    for table in facts["syscalls"].values():
        for n in names:
            table.pop(n, None)
    for per_arch in facts["executables"].values():
        for arch, scs in per_arch.items():
            per_arch[arch] = [s for s in scs if s not in names]
    return aggregate.relearn(Profile(runs=profile.runs, facts=facts, rules=profile.rules),
                             {"args": profile.rules.args_mode, "style": "allowlist"})


def _logged(lines: list[str], exe: str, since: float) -> int:
    recs, _ = parse(lines, LogFilter(since=since, exe=(exe,)))
    return len(recs)


def _run_logged(profile: Path, exes: list[Path], workdir: Path, expect: int) -> tuple[float, list[str]]:
    """Run each exe under --complain-log until the kernel log holds its ``expect`` records (the log is rate
    limited for the whole machine: a burst elsewhere can suppress ours; then wait and run again)."""
    for _attempt in range(4):
        since = time.time() - 1
        for exe in exes:
            res = lp("run", "--profile", str(profile), "--complain-log", "--", str(exe), str(workdir))
            assert res.returncode == 0, res.stderr
            assert "add them with: sudo leastpriv learn --from-log /dev/kmsg --since @" in res.stderr
        deadline = time.time() + 5
        while time.time() < deadline:
            lines = _kmsg_seccomp_lines()
            if all(_logged(lines, str(e), since) >= expect for e in exes):
                return since, lines
            time.sleep(0.2)
        time.sleep(5)   # printk's rate limit is 10 per 5 s
    pytest.fail(f"the kernel log did not show the seccomp records of {exes} (rate limited four times?)")


def test_real_records_from_the_kernel_log_complete_the_profile(build_c, tmp_path):
    need_root()
    app = tmp_path / "log_app"
    shutil.copy(build_c("log_app"), app)
    app32 = tmp_path / "log_app32"
    shutil.copy(build_c("log_app", m32=True), app32)
    other = tmp_path / "other_app"          # another executable writing records to the same log
    shutil.copy(build_c("log_app"), other)
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    full = tmp_path / "full.json"
    learn_profile([str(app), str(tmp_path / "a")], path=full)
    learn_profile([str(app32), str(tmp_path / "a")], path=full)
    p = Profile.load(str(full))
    assert {"uname", "getcwd"} <= set(p.rules.syscalls["x86_64"]) & set(p.rules.syscalls["x86"])
    less = tmp_path / "less.json"
    never_seen(p, "uname", "getcwd").save(str(less))
    # what was taken away is needed: enforcing, the workload fails
    res = lp("run", "--profile", str(less), "--", str(app), str(tmp_path / "b"))
    assert res.returncode == 3 and "uname: Operation not permitted" in res.stderr

    since, lines = _run_logged(less, [app, app32, other], tmp_path / "b", expect=2)
    assert (tmp_path / "b" / "out.txt").read_text().startswith("Linux ")   # logged, not denied
    log = tmp_path / "kmsg.log"
    log.write_text("\n".join(lines) + "\nthis line is not a record\n6,99,1,-;audit: type=1326 audit(12.5:1): pid=1\n")

    learned = tmp_path / "learned.json"
    shutil.copy(less, learned)
    res = lp("learn", "--from-log", str(log), "--exe", str(app), "--exe", str(app32), "--since", f"@{since}",
             "-o", str(learned), "--save-recording", str(tmp_path / "log.rec.json"), "--json", check=True)
    added = json.loads(res.stdout)["added"]
    assert added["syscalls"] == {"x86": ["getcwd", "uname"], "x86_64": ["getcwd", "uname"]}, res.stderr
    assert "1 malformed seccomp record line(s) skipped" in res.stderr
    assert f"records of 1 other program(s) left out: {other} (" in res.stderr
    prof = Profile.load(str(learned))
    run = prof.runs[-1]
    assert run["backend"] == "log" and run["target"] == f"log:{log}"
    assert run["started"] >= since and run["ended"] <= time.time()
    rec = json.loads((tmp_path / "log.rec.json").read_text())
    assert rec["executables"] == {str(app): {"x86_64": ["getcwd", "uname"]}, str(app32): {"x86": ["getcwd", "uname"]}}
    assert {n: s["count"] for n, s in rec["syscalls"]["x86_64"].items()} == {"getcwd": 1, "uname": 1}
    assert str(other) not in prof.facts["executables"]
    assert set(prof.rules.syscalls["x86_64"]) == set(p.rules.syscalls["x86_64"])
    assert set(prof.rules.syscalls["x86"]) == set(p.rules.syscalls["x86"])
    # the result runs the workload, enforcing its seccomp filter, on another input (another directory: the
    # Landlock rules learned by the trace allow writing in "a" only, and a log says nothing about files)
    for exe in (app, app32):
        res = lp("run", "--profile", str(learned), "--no-landlock", "--", str(exe), str(tmp_path / "c"))
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "c" / "out.txt").read_text() == f"Linux {os.getcwd()}\n"

    # /dev/kmsg itself as SOURCE, and check: the log is NEW, the baseline lacks its syscalls
    direct = tmp_path / "direct.json"
    shutil.copy(less, direct)
    res = lp("learn", "--from-log", str(KMSG), "--exe", str(app), "--since", f"@{since}", "-o", str(direct),
             "--json", check=True)
    assert json.loads(res.stdout)["added"]["syscalls"] == {"x86_64": ["getcwd", "uname"]}
    own = tmp_path / "own.log"
    own.write_text("\n".join(ln for ln in lines if _logged([ln], str(app), since)) + "\n")
    res = lp("check", "--baseline", str(less), str(own), "--format", "json")
    assert res.returncode == 1, res.stderr
    res = lp("check", "--baseline", str(learned), str(own), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ the formats tools print

REC = ('audit: type=1326 audit(1796013070.018:6): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=18506 '
       'comm="log_app" exe="/tmp/log_app" sig=0 arch=c000003e syscall=63 compat=0 ip=0x7fd2668b9b07 code=0x7ffc0000')
AUDITD = ('type=SECCOMP msg=audit(1796013070.030:7): auid=4294967295 uid=1000 gid=1000 ses=4294967295 '
          'subj=unconfined pid=18506 comm="log_app" exe="/tmp/log_app" sig=0 arch=c000003e syscall=79 compat=0 '
          'ip=0x7fd2668decce code=0x7ffc0000\x1dAUID="unset" UID="user" GID="user" ARCH=x86_64 SYSCALL=getcwd')


def _one(line: str, **filt):
    recs, report = parse([line], LogFilter(**filt))
    assert report.malformed == 0, line
    assert len(recs) == 1, line
    return recs[0]


@pytest.mark.parametrize("line,node", [
    (REC, ""),
    ("[  726.376730] " + REC, ""),                                  # dmesg
    ("[Mon Nov 30 04:31:10 2026] " + REC, ""),                       # dmesg -T
    ("Nov 30 04:31:10 web-1 kernel: " + REC, "web-1"),              # journalctl -k, syslog
    ("2026-11-30T04:31:10+0000 web-1 kernel: " + REC, "web-1"),     # journalctl -k -o short-iso
    ("6,1234,726376730,-;" + REC, ""),                               # /dev/kmsg
    ("node-b: [  726.376730] " + REC, "node-b"),                     # many nodes in one file
    ("node-c | Nov 30 04:31:10 web-1 kernel: " + REC, "node-c"),
])
def test_kernel_log_formats(line, node):
    r = _one(line)
    assert (r.node, r.arch, r.syscall, r.exe, r.comm, r.pid, r.uid) == (node, "x86_64", "uname", "/tmp/log_app",
                                                                         "log_app", 18506, 0)
    assert r.time == pytest.approx(1796013070.018) and r.serial == 6 and r.action == "SECCOMP_RET_LOG"


def test_audit_log_format_and_abis():
    r = _one(AUDITD)
    assert (r.syscall, r.uid) == ("getcwd", 1000)
    i386 = REC.replace("arch=c000003e syscall=63 compat=0", "arch=40000003 syscall=122 compat=1")
    assert (_one(i386).arch, _one(i386).syscall) == ("x86", "uname")
    x32 = REC.replace("syscall=63", f"syscall={0x40000000 | 63}")
    assert (_one(x32).arch, _one(x32).syscall) == ("x32", "uname")
    arm = REC.replace("arch=c000003e", "arch=c00000b7").replace("syscall=63", "syscall=160")
    assert (_one(arm).arch, _one(arm).syscall) == ("aarch64", "uname")
    unknown = REC.replace("syscall=63", "syscall=4000")
    assert _one(unknown).syscall == "#4000"
    hexexe = REC.replace('exe="/tmp/log_app"', "exe=2F746D702F6120622F78").replace('comm="log_app"', "comm=612062")
    assert (_one(hexexe).exe, _one(hexexe).comm) == ("/tmp/a b/x", "a b")
    # a control character is hex-encoded by audit: decoded for the profile, escaped on a status line
    esc = REC.replace('exe="/tmp/log_app"', "exe=2F746D702F1B5B33316D78")
    recs, report = parse([esc])
    assert recs[0].exe == "/tmp/\x1b[31mx" and "/tmp/\\x1b[31mx: 1" in report.summary()[0]
    _, report = parse([REC.replace('exe="/tmp/log_app"', 'exe="/tmp/\x1b[31mx"')])   # never written so by audit
    assert report.malformed == 1
    killed = REC.replace("code=0x7ffc0000", "code=0x80000000")
    assert _one(killed).action == "SECCOMP_RET_KILL_PROCESS"


def test_ausearch_interpreted():
    """ausearch -m SECCOMP -i: local time, machine and syscall names, code names."""
    from datetime import datetime
    line = ("type=SECCOMP msg=audit(11/30/2026 04:31:10.018:6) : auid=unset uid=root gid=root ses=unset pid=18506 "
            "comm=log_app exe=/tmp/log_app sig=SIG0 arch=x86_64 syscall=uname compat=0 ip=0x7fd2668b9b07 code=log")
    r = _one(line)
    assert (r.arch, r.syscall, r.nr, r.exe, r.pid, r.action) == ("x86_64", "uname", 63, "/tmp/log_app", 18506,
                                                                 "SECCOMP_RET_LOG")
    assert r.time == pytest.approx(datetime(2026, 11, 30, 4, 31, 10, 18000).timestamp())
    r = _one(line.replace("arch=x86_64 syscall=uname", "arch=i686 syscall=getcwd").replace("code=log", "code=kill"))
    assert (r.arch, r.syscall, r.nr, r.action) == ("x86", "getcwd", 183, "SECCOMP_RET_KILL_THREAD")
    _, report = parse([line.replace("syscall=uname", "syscall=no_such_call"), "audit: type=1326 cut off"])
    assert report.malformed == 2 and report.records == 0


def test_duplicates_rate_limits_malformed_and_filters():
    other = REC.replace('exe="/tmp/log_app"', 'exe="/usr/bin/other"').replace('comm="log_app"', 'comm="other"') \
        .replace(":6)", ":8)")
    lines = [
        "[  726.3] " + REC,
        REC.replace("audit: type=1326 audit", "type=SECCOMP msg=audit"),   # the same record from audit.log
        "[  726.4] " + REC.replace(":6)", ":9)").replace("syscall=63", "syscall=79"),
        "[  726.5] kauditd_printk_skb: 7 callbacks suppressed",
        "[  726.6] audit: audit_lost=3 audit_rate_limit=0 audit_backlog_limit=64",
        "[  726.7] " + other,
        "[  726.8] audit: type=1326 audit(1796013071.000:10): pid=1 comm=\"x\" arch=zz syscall=1",   # malformed
        "[  726.9] audit: type=1326 audit(1796013071.000:11): truncated",                             # malformed
        "\x00\xff garbage line",
        "",
        "[  727.0] " + REC.replace("1796013070.018:6", "1796010000.000:2"),   # before --since
    ]
    recs, report = parse(lines, LogFilter(since=1796013000, exe=("/tmp/*",)))
    assert [r.syscall for r in recs] == ["uname", "getcwd"]
    assert (report.records, report.kept, report.duplicates, report.before_since) == (5, 2, 1, 1)
    assert (report.suppressed, report.lost, report.malformed, report.malformed_lines) == (7, 3, 2, (7, 8))
    assert report.other_programs == (("/usr/bin/other", 1),)
    text = " ".join(report.summary() + report.warnings())
    assert "1 duplicate records" in text and "7 not printed (kauditd_printk_skb: callbacks suppressed)" in text
    assert "3 lost by audit" in text and "2 malformed seccomp record line(s) skipped (line 7, 8)" in text
    recs, _ = parse(lines, LogFilter(comm=("oth*",)))
    assert [r.exe for r in recs] == ["/usr/bin/other"]


def test_cli_errors_are_one_line(tmp_path):
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(b"\x00\x01\x02 not a log\n" * 10)
    out = tmp_path / "p.json"
    for args in (["--from-log", str(garbage)], ["--from-log", str(tmp_path / "missing.log")],
                 ["--from-log", str(tmp_path)], ["--since", "1h", "--", "true"],
                 ["--from-log", str(garbage), "--since", "yesterday-ish"]):
        res = lp("learn", *args, "-o", str(out))
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()   # nothing added when nothing was read
    log = tmp_path / "x.log"
    log.write_text("[  1.0] " + REC + "\n")
    res = lp("learn", "--from-log", str(log), "--exe", "/nothing", "-o", str(out))
    assert res.returncode == 2 and "1 seccomp records, none kept (exe /nothing)" in res.stderr


def test_since_forms():
    now = 1796013070.0
    assert parse_since("30m", now) == now - 1800
    assert parse_since("@1796000000", now) == 1796000000
    assert parse_since("2026-11-30T04:00:00+00:00", now) == 1796011200
