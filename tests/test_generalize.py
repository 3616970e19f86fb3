"""Profiles that generalize without over-granting: harmless siblings, the runtime base by default,
only the ABIs used (this file); path patterns and the program suite in test_generalize_suite.py."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest

from leastpriv.kernel import groups as syscall_groups, syscalls
from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile
from leastpriv.policy.risks import SYSCALLS as DANGEROUS
from leastpriv.learner.siblings import addable, families, siblings

from .conftest import WORKLOADS, lp, need_root
from .containers_here import export, make_rootfs, run_podman, run_runc
from .learning import learn_profile


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    need_root()
    return make_rootfs(tmp_path_factory.mktemp("gen-root"))


# ------------------------------------------------------------------ the sibling table

def test_sibling_families_follow_systemd_groups_and_never_add_danger():
    groups = syscall_groups.groups()
    for fam in families():
        assert fam.why and fam.deviation, fam.name
        if fam.group:
            assert set(fam.members) <= groups[fam.group], (fam.name, set(fam.members) - groups[fam.group])
    for arch in syscalls.arches():
        every = [m for fam in families() for m in fam.members + fam.triggers]
        added = {s.name for s in siblings(arch, every)} | {s.name for s in siblings(arch, ["read"])}
        assert not added & set(DANGEROUS), (arch, added & set(DANGEROUS))
        # argument-ruled names are never added unconditionally (setsockopt only when never called)
        assert all(addable(arch, n) for n in added)
    assert not addable("x86_64", "clone") and not addable("x86_64", "socket") and not addable("x86_64", "ptrace")
    got = {(s.name, s.sibling_of) for s in siblings("x86_64", ["fsync", "poll", "exit_group"])}
    assert {("fdatasync", "fsync"), ("syncfs", "fsync"), ("ppoll", "poll"), ("epoll_wait", "poll"),
            ("exit", "exit_group")} <= got


def test_siblings_let_the_other_variant_run_and_exact_does_not(build_c, tmp_path):
    exe = str(build_c("lp_variants"))
    out = str(tmp_path / "v.out")
    path = tmp_path / "v.json"
    learn_profile([exe, "a", out], path, runs=2)
    prof = Profile.load(str(path))
    sib = {s.name: s.sibling_of for s in prof.rules.siblings["x86_64"]}
    assert sib["fdatasync"] == "fsync" and sib["ppoll"] == "poll" and "vfork" in sib and "pwrite64" in sib
    assert not {"fdatasync", "ppoll", "vfork", "pwrite64"} & set(prof.facts["syscalls"]["x86_64"])
    # the other input picks the other variants: the default profile runs it
    res = lp("run", "--profile", str(path), "--", exe, "b", out)
    assert (res.returncode, res.stdout) == (0, "sync: ok\npoll: ok\nfork: ok\n"), res.stderr
    # --exact: only what was traced, the other variants are denied
    exact = aggregate.relearn(prof, {"exact": True})
    assert exact.rules.siblings == {} and "fdatasync" not in exact.rules.syscalls["x86_64"]
    exact.save(str(tmp_path / "exact.json"))
    res = lp("run", "--profile", str(tmp_path / "exact.json"), "--", exe, "b", out)
    assert res.returncode != 0 and "denied" in res.stdout
    # the export says what it added and --exact leaves it out
    res = lp("export", str(path), "--format", "docker", check=True)
    names = {n for r in json.loads(res.stdout)["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "fdatasync" in names and "harmless siblings added" in res.stderr and "fdatasync (fsync)" in res.stderr
    res = lp("export", str(path), "--format", "docker", "--exact", "--runtime", "none", check=True)
    names = {n for r in json.loads(res.stdout)["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "fdatasync" not in names and "ppoll" not in names
    show = lp("show", str(path), check=True).stdout
    assert "added by generalization" in show and "fdatasync" in show


# ------------------------------------------------------------------ the runtime base by default

def test_runtime_base_is_in_container_exports_by_default(build_c, tmp_path):
    from leastpriv.policy.runtime_base import runtime_base

    path = tmp_path / "t.json"
    learn_profile([str(build_c("lp_int80"))], path)
    nnp = set(runtime_base("runc", None, True).syscalls)
    without = set(runtime_base("runc", None, False).syscalls)
    assert nnp < without

    def allowed(fmt, *args):
        res = lp("export", str(path), "--format", fmt, *args, check=True)
        obj = json.loads(res.stdout) if fmt != "k8s-seccompprofile" else __import__("yaml").safe_load(res.stdout)["spec"]
        obj = obj["linux"]["seccomp"] if fmt == "oci" else obj
        return {n for r in obj["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
                for n in r["names"]}, res.stderr

    oci, notes = allowed("oci")
    assert nnp <= oci and not (without - nnp) <= oci and "with noNewPrivileges" in notes
    docker, notes = allowed("docker")
    assert without <= docker and "without noNewPrivileges" in notes and "Podman's default" in notes
    assert set(runtime_base("crun", None, False).syscalls) <= docker and "crun" in notes   # Podman's runtime
    k8s, _ = allowed("k8s-seccompprofile")
    assert without <= k8s
    bare, notes = allowed("docker", "--runtime", "none")
    assert not without <= bare and "no runtime base" in notes


# ------------------------------------------------------------------ only the ABIs used

def test_64_bit_profile_denies_int80(build_c, tmp_path, rootfs):
    need_root()
    exe = str(build_c("lp_int80"))
    path = tmp_path / "i.json"
    learn_profile([exe], path, runs=2)
    assert set(Profile.load(str(path)).facts["syscalls"]) == {"x86_64"}
    assert subprocess.run([exe, "int80"], capture_output=True, text=True).stdout == "int80 getpid: ok\n"
    # leastpriv run: x86_64 works, the i386 entry is denied (getpid is allowed by name on x86_64)
    assert lp("run", "--profile", str(path), "--", exe).stdout == "x86_64 getpid: ok\n"
    res = lp("run", "--profile", str(path), "--", exe, "int80")
    assert res.returncode != 0 and "int80 getpid: ok" not in res.stdout
    # the oci export lists x86_64 only; runc runs the 64-bit call and denies the int $0x80 one
    frag = export(path, "oci")
    assert frag["linux"]["seccomp"]["architectures"] == ["SCMP_ARCH_X86_64"]
    binds = [str(build_c("lp_int80").parent)]
    st, out, err = run_runc(rootfs, frag, [exe], binds=binds)
    assert (st, out) == (0, "x86_64 getpid: ok\n"), err
    st, out, err = run_runc(rootfs, frag, [exe, "int80"], binds=binds)
    assert st != 0 and "int80 getpid: ok" not in out, (st, out, err)
    # the same filter listing the i386 ABI (as every ABI used to be listed) lets it through: the test can fail
    frag["linux"]["seccomp"]["architectures"].append("SCMP_ARCH_X86")
    st, out, err = run_runc(rootfs, frag, [exe, "int80"], binds=binds)
    assert (st, out) == (0, "int80 getpid: ok\n"), err


# ------------------------------------------------------------------ no over-grant (leastpriv run)

@pytest.mark.parametrize("backend", ["ptrace", "ebpf"])
def test_listing_a_directory_does_not_grant_its_files(tmp_path, backend):
    need_root()
    path = tmp_path / "etc.json"
    for _ in range(2):
        lp("learn", "--backend", backend, "-o", str(path), "--", "sh", "-c", "ls /etc >/dev/null; cat /etc/hostname",
           check=True)
    host = open("/etc/hostname").read()
    res = lp("run", "--profile", str(path), "--", "sh", "-c", "ls /etc >/dev/null; cat /etc/hostname")
    assert (res.returncode, res.stdout) == (0, host), res.stderr
    probe = ("cat /etc/shadow >/dev/null 2>&1 && echo shadow: read || echo shadow: denied; "
             "(echo x > /dev/lp-gen-probe) 2>/dev/null && echo dev: created || echo dev: denied")
    try:
        res = lp("run", "--profile", str(path), "--", "sh", "-c", probe)
        assert res.stdout == "shadow: denied\ndev: denied\n", res.stderr
        assert not os.path.exists("/dev/lp-gen-probe")
    finally:
        if os.path.exists("/dev/lp-gen-probe"):
            os.unlink("/dev/lp-gen-probe")
    # the same probe with Landlock off does read /etc/shadow (root): the test can fail
    res = lp("run", "--profile", str(path), "--no-landlock", "--", "sh", "-c", probe.split(";")[0])
    assert res.stdout == "shadow: read\n", res.stderr


def test_a_pattern_beneath_tmp_keeps_tmp_shared(tmp_path):
    """A workload that lives in a mktemp-named directory of /tmp (a CI job's checkout in /tmp/ci-XXXXXX) and
    makes its own mktemp directory: its script's path is learned as a pattern beneath /tmp, so `run` keeps
    /tmp shared -- a private /tmp would hide the script (before: `sh: cannot open ...: No such file`)."""
    need_root()
    d = f"/tmp/lp-ci-a{os.urandom(3).hex()}9"    # mixed letters and digits: mktemp's shape
    os.mkdir(d, 0o755)
    try:
        script = os.path.join(d, "job.sh")
        with open(WORKLOADS / "gen_logger.sh") as src, open(script, "w") as dst:
            dst.write(src.read())
        path = tmp_path / "job.json"
        for word in ("alpha", "beta"):
            learn_profile(["sh", script, word], path)
        prof = Profile.load(str(path))
        assert [p.pattern for p in prof.rules.patterns] == ["/tmp/lp-ci-*/job.sh"], prof.rules.patterns
        assert [o.pattern for o in prof.rules.owned] == ["/tmp/tmp.*"]
        res = lp("run", "--profile", str(path), "--", "sh", script, "gamma")
        assert (res.returncode, res.stdout) == (0, "run gamma\n"), res.stderr
        assert "/tmp is shared" in res.stderr and "private /tmp for the workload" not in res.stderr, res.stderr
    finally:
        for root, dirs, files in os.walk(d, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for sub in dirs:
                os.rmdir(os.path.join(root, sub))
        os.rmdir(d)


def test_own_mktemp_dir_is_owned_and_nothing_else_is_writable(tmp_path):
    need_root()
    script = str(WORKLOADS / "gen_logger.sh")
    path = tmp_path / "log.json"
    for word in ("alpha", "beta"):
        learn_profile(["sh", script, word], path)
    prof = Profile.load(str(path))
    owned = prof.rules.owned
    assert [o.pattern for o in owned] == ["/tmp/tmp.*"] and owned[0].runs == 2
    assert len(owned[0].paths) == 2 and all(p.startswith("/tmp/tmp.") for p in owned[0].paths)
    assert not any(p.startswith("/tmp/tmp.") for p in prof.rules.files.all_paths())
    # someone else's file in /tmp, writable by anyone as far as permissions go
    victim = tempfile.NamedTemporaryFile(prefix="lp-gen-victim.", dir="/tmp", delete=False)
    victim.write(b"theirs\n")
    victim.close()
    os.chown(victim.name, 65534, 65534)
    os.chmod(victim.name, 0o666)
    home = os.path.expanduser("~")
    try:
        # another input: the mktemp name differs; the profile runs it (output and status as untraced)
        untraced = subprocess.run(["sh", script, "gamma"], capture_output=True, text=True)
        res = lp("run", "--profile", str(path), "--", "sh", script, "gamma")
        assert (res.returncode, res.stdout) == (untraced.returncode, untraced.stdout) == (0, "run gamma\n"), res.stderr
        assert "private /tmp" in res.stderr
        res = lp("run", "--profile", str(path), "--", "sh", script, "delta", "probe", victim.name)
        # a private /tmp (as systemd's PrivateTmp=): someone else's file is not there to write. When the
        # profile names other paths in /tmp (this checkout's script, if it lives there) /tmp stays shared,
        # run says so, and Landlock denies the write instead.
        shared = str(WORKLOADS).startswith("/tmp/")
        other = "tmp-other: denied" if shared else "tmp-other: not there"
        assert res.stdout == f"run delta\n{other}\nhome: denied\netc: denied\n", res.stderr
        assert ("/tmp is shared" in res.stderr) == shared, res.stderr
        assert open(victim.name).read() == "theirs\n"
        assert not os.path.exists(os.path.join(home, "lp-gen-probe")) and not os.path.exists("/etc/lp-gen-probe")
        # without leastpriv the same probe does write all three: the test can fail
        res = subprocess.run(["sh", script, "x", "probe", victim.name], capture_output=True, text=True)
        assert res.stdout == "run x\ntmp-other: written\nhome: written\netc: written\n"
        assert open(victim.name).read() == "theirs\nintruder\n"
    finally:
        os.unlink(victim.name)
        for p in (os.path.join(home, "lp-gen-probe"), "/etc/lp-gen-probe"):
            if os.path.exists(p):
                os.unlink(p)


# ------------------------------------------------------------------ check knows the policy

def test_check_separates_growth_the_policy_allows(build_c, tmp_path):
    exe = str(build_c("lp_variants"))
    out = str(tmp_path / "v.out")
    base = tmp_path / "base.json"
    learn_profile([exe, "a", out], base, runs=2)
    # the other variants: new syscalls, every one a harmless sibling -> listed, exit 0
    res = lp("check", "--baseline", str(base), "--backend", "ptrace", "--format", "json", "--output",
             str(tmp_path / "r.json"), "--", exe, "b", out)
    r = json.loads((tmp_path / "r.json").read_text())
    assert res.returncode == 0 and r["added"] == [], (res.stderr, r["added"])
    allowed = {c["item"]: c["allowed_by"] for c in r["allowed"] if c["kind"] == "syscall"}
    assert "fsync" in allowed["fdatasync"] and "poll" in allowed["ppoll"] and "vfork" in allowed
    # --strict fails on any new fact
    res = lp("check", "--baseline", str(base), "--backend", "ptrace", "--strict", "--", exe, "b", out)
    assert res.returncode == 1, res.stderr
    # a new mktemp name beneath an owned directory is not growth; writing in /etc is
    script = str(WORKLOADS / "gen_logger.sh")
    logb = tmp_path / "log.json"
    for word in ("alpha", "beta"):
        learn_profile(["sh", script, word], logb)
    res = lp("check", "--baseline", str(logb), "--backend", "ptrace", "--", "sh", script, "gamma")
    assert res.returncode == 0 and "owned directory /tmp/tmp.*" in res.stdout, res.stdout + res.stderr
    assert lp("check", "--baseline", str(logb), "--backend", "ptrace", "--strict", "--", "sh", script,
              "gamma").returncode == 1
    victim = tmp_path / "victim"
    victim.write_text("")
    try:
        res = lp("check", "--baseline", str(logb), "--backend", "ptrace", "--format", "json", "--output",
                 str(tmp_path / "g.json"), "--", "sh", script, "delta", "probe", str(victim))
        grew = {c["item"] for c in json.loads((tmp_path / "g.json").read_text())["added"] if c["kind"] == "file"}
        assert res.returncode == 1 and "/etc/lp-gen-probe" in grew, res.stderr
    finally:
        for p in (os.path.expanduser("~/lp-gen-probe"), "/etc/lp-gen-probe"):
            if os.path.exists(p):
                os.unlink(p)
