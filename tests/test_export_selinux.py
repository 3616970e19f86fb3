"""SELinux export: the module compiles with secilc against Debian's reference policy; a broken one does not.

The base policy is Debian's ``selinux-policy-default`` itself: every module
(/usr/share/selinux/default/*.pp.bz2) converted to CIL with the converter
semodule uses (/usr/libexec/selinux/hll/pp), so the types, classes,
permissions, attributes and neverallow rules a module is checked against are
the reference policy's. On top: udica's templates from container-selinux,
unchanged (tests/data/selinux/*_container.cil), and a shim declaring the four
names they use that the reference policy lacks (container_shim.cil). Two
things of the templates themselves do not hold against the reference policy,
and the checker below says so rather than hiding it: restricted_net_container
names legacy permissions (node tcp_recv, ...) that refpolicy no longer has, so
that ``optional`` is disabled (secilc: "Failed to resolve permission"), and
base_container's ``proc_type`` read breaks refpolicy's neverallows on
proc_kcore_t/proc_kmsg_t. A neverallow broken by a rule *of the module* fails
the check. This kernel has no SELinux: nothing is loaded.
"""
from __future__ import annotations

import bz2
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leastpriv.exporters.selinux import comment
from leastpriv.exporters.selinux_policy import TargetPolicy

from .conftest import ROOT, lp, which
from .learning import learn_httpd, learn_profile, with_rules

DATA = Path(__file__).resolve().parent / "data" / "selinux"
PP_DIR = Path("/usr/share/selinux/default")
HLL = [Path("/usr/libexec/selinux/hll/pp"), Path("/usr/lib/selinux/hll/pp")]


@pytest.fixture(scope="session")
def refpolicy(tmp_path_factory) -> list[Path]:
    """Debian's reference policy as CIL files, plus the templates and the shim."""
    hll = next((p for p in HLL if p.exists()), None)
    if hll is None or not PP_DIR.is_dir():
        pytest.fail("selinux-policy-default and semodule-utils (hll/pp) are needed: `make install` installs them")
    out = tmp_path_factory.mktemp("refpolicy")
    files = []
    for pp in sorted(PP_DIR.glob("*.pp.bz2")):
        cil = out / (pp.name[:-len(".pp.bz2")] + ".cil")
        proc = subprocess.run([str(hll)], input=bz2.decompress(pp.read_bytes()), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        assert proc.returncode == 0, f"{pp}: {proc.stderr.decode()}"
        cil.write_bytes(proc.stdout)
        files.append(cil)
    assert any(f.name == "base.cil" for f in files) and len(files) > 100
    return files + sorted(DATA.glob("*.cil"))


def secilc(base: list[Path], modules: list[Path], tmp: Path) -> tuple[bool, list[str]]:
    """Compile base + modules. (ok, problems): ok when everything resolves and no neverallow is broken by a
    rule written in one of ``modules``; the templates' own known violations (see the docstring) are allowed."""
    proc = subprocess.run([which("secilc"), "-o", str(tmp / "policy.bin"), "-f", str(tmp / "file_contexts"),
                           *map(str, base), *map(str, modules)], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return True, []
    sections = re.split(r"(?=neverallow check failed at )", out)
    problems = []
    for s in sections:
        if s.startswith("neverallow check failed at "):
            if any(f"allow at {m}:" in s for m in modules):
                problems.append(s.strip())
            elif "allow at " + str(DATA / "base_container.cil") not in s:
                problems.append(s.strip())
        else:   # anything that is not a neverallow report: resolution / syntax errors
            for line in s.splitlines():
                if not line.strip() or line.startswith(("Failed to generate binary", "Failed to build policydb")):
                    continue
                if re.match(r"Failed to resolve permission (tcp_recv|udp_recv|udp_send|recv_msg)$", line):
                    continue   # restricted_net_container's legacy permissions: its optional is disabled
                problems.append(line)
    return not problems, problems


def export(profile_path: Path, *args: str) -> subprocess.CompletedProcess:
    return lp("export", str(profile_path), "--format", "selinux", *args, check=True)


def rules_of(text: str) -> list[str]:
    """The module's statements (comments left out)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(";")]


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """The exporter tests' profiles (the HTTP server; a script with capabilities) as SELinux modules."""
    d = tmp_path_factory.mktemp("se")
    _d, port, _argv, httpd = learn_httpd(d)
    httpd.save(str(d / "httpd.json"))
    script = d / "w.sh"
    script.write_text("#!/bin/sh\nuname -s >/dev/null; cat /proc/self/status >/dev/null; ls /usr/share/zoneinfo "
                      ">/dev/null; date > " + str(d / "out.txt") + "\n")
    script.chmod(0o755)
    prof, _ = learn_profile([str(script)])
    with_rules(prof, capabilities=["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_BPF"]).save(str(d / "script.json"))
    web = export(d / "httpd.json", "--name", "web", "-o", str(d / "web.cil"))
    sh = export(d / "script.json", "-o", str(d / "script.cil"))
    # a profile with hostile paths (see test_hostile_paths_cannot_reach_the_module)
    files = {"read": [EVIL, "relative/path", "/etc/../etc/shadow", "/proc/self/status",
                      "/sys/kernel/mm/transparent_hugepage/enabled", "/srv/\x1b[31mred[1]", "/lp-unlabelled/data"],
             "write": [], "create": [], "exec": ["/usr/bin/true"]}
    patterns = [{"pattern": "/usr/share/zoneinfo/*", "base": "/usr/share/zoneinfo", "access": ["read"],
                 "paths": ["/usr/share/zoneinfo/UTC"], "count": 1, "runs": 1, "why": "test"},
                {"pattern": "/x/*", "base": "/x/../etc", "access": ["read"]}]   # ({"pattern": 5}: refused on read)
    owned = [{"pattern": "/var/tmp/lp-owned-*", "base": "/var/tmp", "access": ["create", "write"],
              "paths": ["/var/tmp/lp-owned-1"], "count": 3, "runs": 1, "why": "created by the workload"}]
    with_rules(prof, files=files, patterns=patterns, owned=owned).save(str(d / "evil.json"))
    evil = export(d / "evil.json", "--name", "evil", "-o", str(d / "evil.cil"))
    return d, port, web, sh, evil


EVIL = "/etc/x\n    (allow process shadow_t ( file ( read open )))\n;"


def test_modules_compile_against_the_reference_policy(refpolicy, modules, tmp_path):
    d, port, web, sh, _evil = modules
    ok, problems = secilc(refpolicy, [d / "web.cil", d / "script.cil", d / "evil.cil"], tmp_path)
    assert ok, "\n".join(problems)
    text = (d / "web.cil").read_text()
    rules = rules_of(text)
    assert rules[:3] == ["(block web", "(blockinherit container)", "(blockinherit restricted_net_container)"]
    with TargetPolicy() as pol:
        port_type = pol.port_type("tcp", port)
    assert f"(allow process {port_type} ( tcp_socket ( name_bind )))" in rules
    assert f"; name_bind {port}" in text
    # www/index.html (read) and logs/access.log (created, written) live under /tmp, <<none>> in file_contexts:
    # they take their directory's type, tmp_t, which gets the union; the logs directory gets add_name/write
    assert "(allow process tmp_t ( file ( append create getattr ioctl lock map open read setattr write )))" in rules
    # add_name/search/write for the logs directory; a checkout under /tmp also has its script's directory
    # read (Python lists sys.path[0]), which adds read permissions to the same tmp_t rule
    tmp_dir = [r for r in rules if r.startswith("(allow process tmp_t ( dir ( ")]
    assert len(tmp_dir) == 1 and {"add_name", "getattr", "search", "write"} <= set(tmp_dir[0].split()), rules
    if not str(ROOT).startswith("/tmp/"):
        assert tmp_dir == ["(allow process tmp_t ( dir ( add_name getattr search write )))"]
    assert "index.html" in text and "access.log" in text
    # python3 runs the server: executing it enters the domain (entrypoint, on its type, bin_t)
    assert "(allow process bin_t ( file ( entrypoint execute execute_no_trans getattr ioctl map open read )))" \
        in rules
    assert "the workload's program: the runtime enters the domain by executing it: /usr/bin/python3" in text
    assert not any("shadow_t" in r for r in rules)          # never used, never granted
    assert not any("capability" in r for r in rules)        # not root: no capability rule
    # how to use it: the notes (stderr) and the module's header
    assert "podman run --security-opt label=type:web.process" in web.stderr
    assert "seLinuxOptions: {type: web.process}" in web.stderr
    assert "semodule -i web.cil /usr/share/udica/templates/base_container.cil" in text
    assert "this kernel has no SELinux" in web.stderr
    sh_rules = rules_of((d / "script.cil").read_text())
    assert "(allow process process ( capability ( chown net_bind_service )))" in sh_rules
    assert "(allow process process ( capability2 ( bpf )))" in sh_rules
    assert any(r.startswith("(allow process shell_exec_t ( file ( execute") for r in sh_rules)


def test_broken_modules_are_rejected(refpolicy, modules, tmp_path):
    d, *_ = modules
    text = (d / "web.cil").read_text()
    end = text.rindex(")")
    bad_perm = tmp_path / "bad_perm.cil"
    bad_perm.write_text(text[:end] + "    (allow process etc_t ( file ( fly )))\n)\n")
    ok, problems = secilc(refpolicy, [bad_perm], tmp_path)
    assert not ok and any("fly" in p for p in problems), problems
    # a rule the reference policy forbids (reading shadow passwords without the attribute): a neverallow
    bad_never = tmp_path / "bad_neverallow.cil"
    bad_never.write_text(text[:end] + "    (allow process shadow_t ( file ( open read )))\n)\n")
    ok, problems = secilc(refpolicy, [bad_never], tmp_path)
    assert not ok and any(f"allow at {bad_never}:" in p for p in problems), problems


def test_complain_mode_is_a_permissive_domain(modules, tmp_path):
    d, *_ = modules
    text = export(d / "httpd.json", "--name", "web", "--complain").stdout
    assert "    (typepermissive process)\n" in text


def test_hostile_paths_cannot_reach_the_module(modules):
    """Paths are untrusted: a newline cannot start a rule, odd paths are refused with a note (the module
    compiles: test_modules_compile_against_the_reference_policy)."""
    d, *_, res = modules
    text = (d / "evil.cil").read_text()
    assert not any("shadow_t" in r for r in rules_of(text)), text
    assert "\\n    (allow process shadow_t" in text          # escaped, inside a comment
    assert "\x1b" not in text and "; read: /srv/\\x1b[31mred[1]\n" in text   # a literal path, not a glob
    assert "3 path(s) are not absolute, normalized paths; refused: /etc/../etc/shadow, relative/path, " in res.stderr
    assert "under /proc/<pid>, /proc/self" in res.stderr and "genfscon" in res.stderr
    # a path the policy has no label for: default_t, granted, and said
    assert "; read: /lp-unlabelled/data\n    (allow process default_t ( file (" in text
    assert "granted default_t: the policy has no label for some of the paths" in res.stderr
    # patterns and owned directories (learner/patterns.py): the types of their base directory and examples
    assert "; read (pattern /usr/share/zoneinfo/*): /usr/share/zoneinfo/*\n    (allow process locale_t ( file (" in text
    assert "owned directory /var/tmp/lp-owned-* (created by the workload: anything beneath it): /var/tmp" in text
    assert "(allow process tmp_t ( dir ( add_name create getattr ioctl lock open read remove_name rmdir search " \
        "setattr write )))" in rules_of(text)


def test_bad_name_is_refused(modules):
    d, *_ = modules
    res = lp("export", str(d / "httpd.json"), "--format", "selinux", "--name", "web) (allow")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--name: 'web) (allow' is not a CIL name" in res.stderr
    res = lp("export", str(d / "httpd.json"), "--format", "selinux", "--selinux-policy", str(d))
    assert res.returncode == 2 and "no file contexts" in res.stderr and "Traceback" not in res.stderr
    # the target's policy named explicitly (a copy of it elsewhere): the same module
    target = d / "target-policy"
    shutil.copytree("/etc/selinux/default/contexts", target / "contexts")
    shutil.copytree("/etc/selinux/default/policy", target / "policy")
    res = lp("export", str(d / "httpd.json"), "--format", "selinux", "--name", "web", "--selinux-policy", str(target),
             check=True)
    assert res.stdout == (d / "web.cil").read_text()
    assert f"labels and port types from the policy in {target}" in res.stderr


@pytest.mark.parametrize("text,expected", [
    ("/etc/passwd", "/etc/passwd"),
    ("/a\nb", "/a\\nb"),
    ("/a\\b", "/a\\\\b"),
    ("/caf\u00e9", "/caf\u00e9"),
    ("/\u202eevil", "/\\u202eevil"),
])
def test_comment_escaping(text, expected):
    assert comment(text) == expected


def test_profile_paths_are_labelled_like_matchpathcon():
    """The labels come from libselinux as matchpathcon prints them (same policy)."""
    out = subprocess.run([which("matchpathcon"), "/etc/passwd", "/usr/bin/python3", "/var/log"], capture_output=True,
                         text=True, check=True).stdout
    want = {ln.split("\t")[0]: ln.split("\t")[1].split(":")[2] for ln in out.strip().splitlines()}
    with TargetPolicy() as pol:
        got = {p: pol.lookup(p, os.lstat(p).st_mode) for p in want}
    assert got == want
