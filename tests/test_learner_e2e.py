"""Learner acceptance with real programs: learned with the ptrace backend, enforced by `leastpriv run`."""
from __future__ import annotations

import json
import subprocess

from leastpriv.kernel import syscalls
from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile

from .conftest import lp, need_root


def learn(tmp_path, name, *argv, out=None, rec=None):
    out = out or str(tmp_path / f"{name}.json")
    extra = ["--save-recording", rec] if rec else []
    res = lp("learn", "--backend", "ptrace", "-o", out, *extra, "--", *argv)
    assert res.returncode == 0, res.stderr
    return out


def run(profile, *argv):
    return lp("run", "--profile", profile, "--", *argv)


def test_safe_rules_keep_workloads_running_and_deny_packet_and_newuser(build_c, tmp_path):
    need_root()     # as root AF_PACKET works without a filter: a denial can only come from the profile
    exe = str(build_c("learner_probe"))
    free = {m: subprocess.run([exe, m], capture_output=True, text=True) for m in ("packet", "userns")}
    assert "socket(AF_PACKET) ok" in free["packet"].stdout and "clone(CLONE_NEWUSER) ok" in free["userns"].stdout
    path = learn(tmp_path, "probe", exe, "base")
    rules = Profile.load(path).rules
    assert rules.args_mode == "safe"
    for name in ("socket", "clone"):
        assert name not in rules.syscalls["x86_64"]
        assert any(name in r.names for r in rules.conditional["x86_64"]), name
    ok = run(path, exe, "base")
    assert (ok.returncode, ok.stdout) == (0, "fork ok 7\nsockets ok\n"), ok.stderr
    packet = run(path, exe, "packet")
    assert packet.stdout == "fork ok 7\nsockets ok\nsocket(AF_PACKET): Operation not permitted\n", packet.stderr
    assert packet.returncode == 4
    hi = run(path, exe, "packethi")
    assert hi.stdout.endswith("socket(AF_PACKET+upper bits): Operation not permitted\n"), hi.stderr
    userns = run(path, exe, "userns")
    assert userns.stdout.endswith("sockets ok\nclone(CLONE_NEWUSER): Operation not permitted\n"), userns.stderr


def test_safe_rules_keep_a_shell_pipeline_running(tmp_path):
    cmd = ["sh", "-c", "ls /etc | sort | head -n 3; cat /etc/hostname >/dev/null; exit 3"]
    path = str(tmp_path / "sh.json")
    assert lp("learn", "--backend", "ptrace", "-o", path, "--", *cmd).returncode == 3
    assert Profile.load(path).rules.conditional, "expected argument rules (clone, mprotect)"
    first = subprocess.run(cmd, capture_output=True, text=True)
    res = run(path, *cmd)
    assert (res.returncode, res.stdout) == (3, first.stdout), res.stderr


def test_merge_of_recordings_from_two_inputs_equals_learning_both(build_c, tmp_path):
    exe = str(build_c("learner_probe"))
    both = str(tmp_path / "both.json")
    ra, rb = str(tmp_path / "a.rec.json"), str(tmp_path / "b.rec.json")
    learn(tmp_path, "a", exe, "base", out=both, rec=ra)
    learn(tmp_path, "b", exe, "aslr", out=both, rec=rb)
    res = lp("merge", ra, rb, "-o", str(tmp_path / "merged.json"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runs"] == 2
    merged, learned = Profile.load(str(tmp_path / "merged.json")), Profile.load(both)
    assert merged.facts == learned.facts and merged.rules == learned.rules
    assert [r["added"] for r in merged.runs] == [r["added"] for r in learned.runs]
    assert "personality" in merged.runs[1]["added"]["syscalls"]["x86_64"]
    # profiles merge too, and merging a profile with itself changes nothing
    pa = learn(tmp_path, "pa", exe, "base")
    res = lp("merge", pa, pa, "-o", str(tmp_path / "same.json"))
    assert res.returncode == 0 and Profile.load(str(tmp_path / "same.json")).facts == Profile.load(pa).facts


def test_denylist_lets_unseen_harmless_syscall_run_and_denies_unshare_and_bpf(build_c, tmp_path):
    need_root()
    exe = str(build_c("learner_probe"))
    allow = learn(tmp_path, "probe", exe, "base")
    deny = str(tmp_path / "deny.json")
    aggregate.relearn(Profile.load(allow), {"style": "denylist"}).save(deny)
    assert run(allow, exe, "newsys").stdout.endswith("getcpu: Operation not permitted\n")   # allowlist denies it
    ok = run(deny, exe, "newsys")
    assert (ok.returncode, ok.stdout.splitlines()[-1]) == (0, "getcpu ok"), ok.stderr
    # without a filter unshare works and bpf fails with another errno (EINVAL), so EPERM is the filter
    assert subprocess.run([exe, "unshare"], capture_output=True, text=True).returncode == 0
    assert "bpf: Invalid argument" in subprocess.run([exe, "bpf"], capture_output=True, text=True).stdout
    hi = subprocess.run([exe, "packethi"], capture_output=True, text=True)
    assert hi.stdout.splitlines()[-1] == "socket(AF_PACKET+upper bits) ok"     # the kernel ignores the upper bits
    for mode, call in (("unshare", "unshare(CLONE_NEWUSER)"), ("bpf", "bpf"), ("userns", "clone(CLONE_NEWUSER)"),
                       ("packet", "socket(AF_PACKET)"), ("packethi", "socket(AF_PACKET+upper bits)")):
        res = run(deny, exe, mode)
        assert res.stdout.splitlines()[-1] == f"{call}: Operation not permitted", (mode, res.stdout, res.stderr)
        assert res.returncode == 4


def test_aarch64_export_of_x86_64_profile(build_c, tmp_path, shared_reference):
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    exe = str(build_c("learner_probe"))
    path = learn(tmp_path, "probe", exe, "base")
    res = lp("export", path, "--format", "docker", "--arch", "aarch64")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    names = {n for r in doc["syscalls"] for n in r["names"]}
    assert names and all(syscalls.exists("aarch64", n) for n in names), sorted(
        n for n in names if not syscalls.exists("aarch64", n))
    assert "openat" in names and "arch_prctl" not in names
    assert "arch_prctl" in res.stderr     # reported, not dropped silently
    spec = shared_reference / "oci-runtime-spec"
    resources = [(f.name, Resource.from_contents(json.loads(f.read_text()), default_specification=DRAFT4))
                 for f in spec.glob("*.json")]
    registry = Registry().with_resources(resources)
    schema = {"$ref": "config-linux.json#/linux/properties/seccomp"}   # the OCI linux.seccomp object
    Draft4Validator(schema, registry=registry).validate(doc)
    bad = {**doc, "defaultAction": "SCMP_ACT_NOPE"}
    assert not Draft4Validator(schema, registry=registry).is_valid(bad)   # the schema does check


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_safe_rules_are_emitted_and_keep_ptrace_workloads_running(build_c, tmp_path):
    """The ptrace issue's workloads (threads, clone3, vfork, sockets, Python) under their safe argument rules."""
    from .conftest import WORKLOADS

    port = _free_port()
    cases = {
        "tasks": [str(build_c("lp_tasks")), str(tmp_path)],
        "net": ["/usr/bin/python3", str(WORKLOADS / "lp_net.py"), str(port), f"lp-learner-{port}",
                str(tmp_path / "s.sock")],
    }
    for name, argv in cases.items():
        path = str(tmp_path / f"{name}.json")
        learned = lp("learn", "--backend", "ptrace", "-o", path, "--", *argv)
        assert learned.returncode == 0, learned.stderr
        rules = Profile.load(path).rules
        constrained = {n for r in rules.conditional["x86_64"] for n in r.names}
        assert {"clone", "socket"} <= constrained, (name, constrained)
        # seccomp only: this test is about the argument rules (Landlock is tested with the enforcer)
        ran = lp("run", "--profile", path, "--no-landlock", "--", *argv)
        assert (ran.returncode, ran.stdout) == (learned.returncode, learned.stdout), (name, ran.stderr)


def test_capability_set_from_kernel_checks_and_from_inference(build_c, tmp_path):
    """eBPF: granted+audited checks are needs, no-audit probes are not; ptrace: the same need inferred."""
    need_root()
    exe = str(build_c("learner_probe"))
    ebpf = str(tmp_path / "ebpf.json")
    res = lp("learn", "--backend", "ebpf", "-o", ebpf, "--", exe, "packet")
    assert res.returncode == 0, res.stderr
    p = Profile.load(ebpf)
    assert p.rules.capabilities == ("CAP_NET_RAW",)
    caps = p.facts["capabilities"]
    assert not caps["CAP_NET_RAW"]["inferred"] and caps["CAP_NET_RAW"]["needed"] >= 1
    # mmap/brk ask "could I overcommit?" without audit: seen, not needed
    assert all(e["needed"] == 0 for c, e in caps.items() if c != "CAP_NET_RAW")
    pt = learn(tmp_path, "pt", exe, "packet")
    q = Profile.load(pt)
    assert q.rules.capabilities == ("CAP_NET_RAW",)
    assert q.facts["capabilities"]["CAP_NET_RAW"]["inferred"]
    assert "AF_PACKET" in q.facts["capabilities"]["CAP_NET_RAW"]["reasons"][0]
    review = json.loads(lp("review", ebpf, "--format", "json").stdout)
    assert "CAP_NET_RAW" not in review["capabilities"]["docker_default_never_used"]
    assert len(review["capabilities"]["docker_default_never_used"]) == 13
    assert review["pod_security"]["level"] == "privileged"     # NET_RAW is outside the baseline set


def test_show_flags_a_fact_seen_in_one_run_of_many(build_c, tmp_path):
    exe = str(build_c("learner_probe"))
    path = str(tmp_path / "p.json")
    for mode in ("base", "base", "aslr", "base"):
        learn(tmp_path, mode, exe, mode, out=path)
    p = Profile.load(path)
    assert [bool(r["added"]) for r in p.runs] == [True, False, True, False]
    assert p.runs_without_growth == 1
    shown = lp("show", path)
    assert shown.returncode == 0, shown.stderr
    flagged = [line for line in shown.stdout.splitlines() if line.startswith("seen in only one of 4 runs")]
    assert flagged and "personality(ADDR_NO_RANDOMIZE)" in flagged[0] and "fork" not in flagged[0]


def test_strict_and_personality_rules_load_and_hold_under_run(build_c, tmp_path):
    exe = str(build_c("learner_probe"))
    path = learn(tmp_path, "aslr", exe, "aslr")
    rules = Profile.load(path).rules
    pers = [r for r in rules.conditional["x86_64"] if r.names == ("personality",)]
    assert len(pers) == 1 and pers[0].args[0].value == 0x0040000     # ADDR_NO_RANDOMIZE, as seen
    ok = run(path, exe, "aslr")
    assert (ok.returncode, ok.stdout.splitlines()[-1]) == (0, "personality(ADDR_NO_RANDOMIZE) ok"), ok.stderr
    strict = str(tmp_path / "strict.json")
    aggregate.relearn(Profile.load(path), {"args": "strict"}).save(strict)
    srules = Profile.load(strict).rules
    triples = [r for r in srules.conditional["x86_64"] if r.names == ("socket",)]
    assert len(triples) == 2 and all(len(r.args) == 3 for r in triples)
    ok = run(strict, exe, "aslr")
    assert (ok.returncode, ok.stdout.splitlines()[-1]) == (0, "personality(ADDR_NO_RANDOMIZE) ok"), ok.stderr
    packet = run(strict, exe, "packet")
    assert packet.returncode == 4 and packet.stdout.endswith("socket(AF_PACKET): Operation not permitted\n")
