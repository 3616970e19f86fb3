"""leastpriv review with profiles learned from real programs; Docker numbers checked against the reference JSON."""
from __future__ import annotations

import csv
import json

import pytest

from leastpriv.policy.pod_security import pss_level

from .conftest import lp

# Docker's default capability set, written out here independently of leastpriv (moby oci/caps/defaults.go)
DOCKER_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}


@pytest.fixture(scope="module")
def learned(build_c, tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    exe = str(build_c("learner_probe"))
    out = {}
    for mode in ("base", "unshare", "aslr"):
        path = str(d / f"{mode}.json")
        res = lp("learn", "--backend", "ptrace", "-o", path, "--", exe, mode)
        assert res.returncode == 0, res.stderr
        out[mode] = path
    return out


def review_json(path):
    res = lp("review", path, "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_flags_unshare_newuser_and_personality_addr_no_randomize(learned):
    base = review_json(learned["base"])
    assert not base["dangerous_args"] and not base["dangerous_syscalls"]
    un = review_json(learned["unshare"])
    assert [a["what"] for a in un["dangerous_args"]] == ["unshare(CLONE_NEWUSER)"]
    assert "CVE-" in un["dangerous_args"][0]["example"]
    assert "unshare" in [s["name"] for s in un["dangerous_syscalls"]]
    assert "unshare" in un["docker"]["used_not_in_docker_default"]    # Docker needs CAP_SYS_ADMIN for it
    aslr = review_json(learned["aslr"])
    assert [a["what"] for a in aslr["dangerous_args"]] == ["personality(ADDR_NO_RANDOMIZE)"]
    assert aslr["docker"]["values_docker_would_deny"] == ["personality(ADDR_NO_RANDOMIZE)"]
    human = lp("review", learned["aslr"])
    assert human.returncode == 0 and "personality(ADDR_NO_RANDOMIZE)" in human.stdout
    md = lp("review", learned["unshare"], "--format", "markdown").stdout
    assert md.startswith("# leastpriv review") and "| argument unshare(CLONE_NEWUSER) |" in md


def _independent_docker_count(reference, arch_csv="x86_64", goarch="amd64"):
    with open(reference / "libseccomp" / "syscalls.csv") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index(arch_csv)
    exists = {r[0] for r in rows[1:] if r[col] != "PNR"}
    d = json.loads((reference / "moby" / "seccomp-default.json").read_text())
    allowed = set()
    for rule in d["syscalls"]:
        if rule["action"] != "SCMP_ACT_ALLOW":
            continue
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= DOCKER_CAPS:
            continue
        if exc.get("caps") and set(exc["caps"]) & DOCKER_CAPS:
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        allowed |= set(rule["names"]) & exists
    return allowed


def test_docker_comparison_matches_an_independent_count(learned, shared_reference):
    allowed = _independent_docker_count(shared_reference)
    for mode in ("base", "unshare"):
        r = review_json(learned[mode])
        prof = json.loads(open(learned[mode]).read())
        used = {n for n in prof["facts"]["syscalls"]["x86_64"] if not n.startswith("#")}
        dk = r["docker"]
        assert dk["arch"] == "x86_64"
        assert dk["docker_allowed"] == len(allowed)
        assert dk["workload_used"] == len(used)
        assert dk["both"] == len(used & allowed)
        assert dk["docker_allows_never_used"] == len(allowed - used)
        assert dk["used_not_in_docker_default"] == sorted(used - allowed)
    assert "ptrace" in allowed and "bpf" not in allowed and "unshare" not in allowed   # the count is not trivial


def test_capabilities_styles_and_pod_security(learned):
    r = review_json(learned["base"])
    caps = r["capabilities"]
    assert caps["needed"] == [] and sorted(caps["docker_default_never_used"]) == sorted(DOCKER_CAPS)
    assert r["styles"]["denylist"]["denied_names"] > 20
    assert r["styles"]["denylist"]["allowed_never_used"] > 200
    prof = json.load(open(learned["base"]))
    used = set(prof["facts"]["syscalls"]["x86_64"])
    sibs = {s["name"] for s in prof["rules"]["siblings"]["x86_64"]}
    assert sibs and not sibs & used   # harmless siblings are what the allowlist adds to what was used
    assert r["styles"]["allowlist"]["allowed"] == len(used | sibs)
    assert any("harmless siblings" in x for x in r["generalization"])
    assert r["pod_security"]["level"] in ("baseline", "restricted")
    assert pss_level({"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False, "runAsNonRoot": True,
                      "seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}})["level"] == "restricted"
    assert pss_level({"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}, "allowPrivilegeEscalation": False,
                      "runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}})["level"] == "baseline"
    assert pss_level({"capabilities": {"add": ["SYS_ADMIN"]}})["level"] == "privileged"


def test_review_for_another_architecture_translates_and_counts_docker_there(learned, shared_reference):
    allowed = _independent_docker_count(shared_reference, "aarch64", "arm64")
    res = lp("review", learned["base"], "--arch", "aarch64", "--format", "json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["arch"] == "aarch64" and r["translated"]["source"] == "x86_64"
    assert "arch_prctl" in [u["syscall"] for u in r["translated"]["untranslatable"]]
    assert r["docker"]["docker_allowed"] == len(allowed)
    assert lp("review", learned["base"], "--arch", "vax").returncode == 2


def test_one_docker_default_evaluator_for_both_reviews(learned, shared_reference):
    """policy/docker_default.py is the one evaluator: Docker selects rules by the machine's native
    architecture (amd64 on x86_64, also for x86 and x32 calls), and both reviews use it."""
    from leastpriv.learner.image_review import build_report
    from leastpriv.learner.profile import Profile
    from leastpriv.policy import docker_default

    for abi, native in (("x86_64", "amd64"), ("x86", "amd64"), ("aarch64", "arm64")):
        assert set(docker_default.allowed(abi).names) == _independent_docker_count(shared_reference, abi, native), abi
    x86 = docker_default.allowed("x86").names
    assert "modify_ldt" in x86 and "socketcall" in x86   # amd64's rules, names that exist on i386
    assert "arch_prctl" not in docker_default.allowed("aarch64").names
    p = Profile.load(learned["base"])
    conf = {"process": {"user": {"uid": 0}, "args": ["x"], "capabilities": {}}}
    img = build_report(image="x", name="x", conf=conf, profile=p, unpack=None, rootfs="/nonexistent", runtime="none",
                       caps_proved=None, learn_exit=0, scan={"world_writable": [], "world_writable_sticky_dirs": []})
    r = review_json(learned["base"])
    assert img["syscalls"]["docker_default_allows_unused"] == r["docker"]["docker_allows_never_used_names"]
