"""Learner pure functions: argument rules, capabilities, merge, denylist, architectures, diff/check.

Recordings here are built with RecordingBuilder (what a backend fills), so each
test states exactly which facts it starts from; tests/test_learner_e2e.py does
the same with real programs.
"""
from __future__ import annotations


from leastpriv.kernel import constants as C
from leastpriv.kernel import syscalls
from leastpriv.learner import aggregate, arches, capabilities
from leastpriv.learner.check import check
from leastpriv.learner.diff import diff
from leastpriv.learner.profile import Profile
from leastpriv.tracer.recording import CapCheck, Endpoint, RecordingBuilder

X = "x86_64"
AF_INET, AF_UNIX, AF_PACKET = (C.value("socket_family", n) for n in ("AF_INET", "AF_UNIX", "AF_PACKET"))
STREAM, DGRAM, RAW = (C.value("socket_type", n) for n in ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW"))
TCGETS = C.value("ioctl", "TCGETS")
FORK_FLAGS = C.value("clone", "CLONE_CHILD_CLEARTID") | C.value("clone", "CLONE_CHILD_SETTID") | 17


def rec(calls=(), args=(), caps=(), net=(), files=(), backend="ptrace", uid=0, results=None):
    b = RecordingBuilder(["prog"], backend, uid=uid)
    for n in calls:
        b.syscall(X, n)
        ret = (results or {}).get(n, 0)
        b.result(X, n, ret)
    for name, values in args:
        b.arg(X, name, values)
    for c in caps:
        b.capability(c)
    for e in net:
        b.endpoint(e)
    for p, acc in files:
        b.file(p, acc)
    return b.build(0, True)


BASE = ["read", "write", "openat", "close", "mmap", "mprotect", "exit_group"]


def _conds(rules, name):
    return [r.args for r in rules.conditional_of(X) if name in r.names]


def _admits(alternatives, values_by_index):
    """Would one of these seccomp rules (alternatives; conditions ANDed) allow this call?"""
    def ok(c):
        v = values_by_index[c.index]
        return {"SCMP_CMP_EQ": v == c.value, "SCMP_CMP_MASKED_EQ": v & c.value == c.value_two}[c.op]
    return any(all(ok(c) for c in alt) for alt in alternatives)


# --- argument rules --------------------------------------------------------------------------------

def test_safe_socket_rules_keep_families_and_forbid_raw_and_packet():
    p = aggregate.learn([rec(BASE + ["socket"], [("socket", (AF_INET, DGRAM | 0x80000, 0)),
                                                  ("socket", (AF_UNIX, STREAM, 0))])])
    rules = p.rules
    assert "socket" not in rules.syscalls[X]
    alts = _conds(rules, "socket")
    # separate rules are alternatives: the families used, any flags, TCP kept as well as UDP
    assert _admits(alts, {0: AF_INET, 1: DGRAM | 0x800, 2: 0})
    assert _admits(alts, {0: AF_INET, 1: STREAM, 2: 6})
    assert _admits(alts, {0: AF_UNIX, 1: C.value("socket_type", "SOCK_SEQPACKET"), 2: 0})
    assert not _admits(alts, {0: AF_PACKET, 1: RAW, 2: 0})
    assert not _admits(alts, {0: AF_INET, 1: RAW, 2: 1})
    assert not _admits(alts, {0: C.value("socket_family", "AF_NETLINK"), 1: RAW, 2: 0})


def test_strict_socket_rules_are_the_exact_triples():
    p = aggregate.learn([rec(BASE + ["socket"], [("socket", (AF_INET, DGRAM, 0))])], {"args": "strict"})
    alts = _conds(p.rules, "socket")
    assert _admits(alts, {0: AF_INET, 1: DGRAM, 2: 0})
    assert not _admits(alts, {0: AF_INET, 1: STREAM, 2: 0})


def test_clone_namespace_rule_and_clone3_enosys_even_when_only_clone3_was_seen():
    p = aggregate.learn([rec(BASE + ["clone3"], [("mmap", (3,))])])
    alts = _conds(p.rules, "clone")
    assert _admits(alts, {0: FORK_FLAGS})
    assert not _admits(alts, {0: FORK_FLAGS | C.value("clone", "CLONE_NEWUSER")})
    assert [(e.names, e.errno) for e in p.rules.errno[X]] == [(("clone3",), "ENOSYS")] and p.rules.errno[X][0].comment
    assert "clone3" not in p.rules.syscalls[X]


def test_unshare_allows_only_the_namespaces_used():
    newns, newuser = C.value("clone", "CLONE_NEWNS"), C.value("clone", "CLONE_NEWUSER")
    p = aggregate.learn([rec(BASE + ["unshare"], [("unshare", (newns,))])])
    alts = _conds(p.rules, "unshare")
    assert _admits(alts, {0: newns}) and _admits(alts, {0: C.value("clone", "CLONE_FS")})
    assert not _admits(alts, {0: newuser})


def test_personality_only_values_seen():
    p = aggregate.learn([rec(BASE + ["personality"], [("personality", (0xFFFFFFFF,))])])
    alts = _conds(p.rules, "personality")
    assert _admits(alts, {0: 0xFFFFFFFF})
    assert not _admits(alts, {0: C.value("personality", "ADDR_NO_RANDOMIZE")})


def test_value_sets_need_two_stable_runs_in_safe_mode():
    one = rec(BASE + ["ioctl", "prctl"], [("ioctl", (TCGETS,)), ("prctl", (15,))])
    p1 = aggregate.learn([one])
    assert "ioctl" in p1.rules.syscalls[X] and "prctl" in p1.rules.syscalls[X]
    assert any("ioctl" in x and "one run" in x for x in p1.rules.loose)
    p2 = aggregate.learn([one, rec(BASE + ["ioctl", "prctl"], [("ioctl", (TCGETS,)), ("prctl", (15,))])])
    assert "ioctl" not in p2.rules.syscalls[X]
    alts = _conds(p2.rules, "ioctl")
    assert _admits(alts, {1: TCGETS}) and _admits(alts, {1: TCGETS | 0xFFFFFFFF00000000})   # unsigned int request
    assert not _admits(alts, {1: C.value("ioctl", "TIOCSTI")})
    varying = aggregate.learn([one, rec(BASE + ["ioctl"], [("ioctl", (C.value("ioctl", "TIOCGWINSZ"),))])])
    assert "ioctl" in varying.rules.syscalls[X]
    assert any("differ between runs" in x for x in varying.rules.loose)
    strict = aggregate.relearn(p1, {"args": "strict"})
    assert "ioctl" not in strict.rules.syscalls[X] and _conds(strict.rules, "ioctl")


def test_prot_exec_rules():
    rx, r = C.value("mmap_prot", "PROT_READ") | C.value("mmap_prot", "PROT_EXEC"), C.value("mmap_prot", "PROT_READ")
    p = aggregate.learn([rec(BASE, [("mmap", (r,)), ("mprotect", (r,))])])
    assert _conds(p.rules, "mprotect") and not _admits(_conds(p.rules, "mprotect"), {2: rx})
    assert "mmap" in p.rules.syscalls[X]                    # safe: a later dlopen maps code
    assert any(x.startswith("x86_64: mmap: PROT_EXEC never used") for x in p.rules.loose)
    strict = aggregate.relearn(p, {"args": "strict"})
    assert not _admits(_conds(strict.rules, "mmap"), {2: rx}) and _admits(_conds(strict.rules, "mmap"), {2: r})
    exec_used = aggregate.learn([rec(BASE, [("mmap", (rx,)), ("mprotect", (rx,))])])
    assert not _conds(exec_used.rules, "mprotect") and "mprotect" in exec_used.rules.syscalls[X]


def test_args_off_and_missing_values():
    p = aggregate.learn([rec(BASE + ["socket", "clone"], [("socket", (AF_INET, STREAM, 0))])], {"args": "off"})
    assert not p.rules.conditional and "socket" in p.rules.syscalls[X] and "clone" in p.rules.syscalls[X]
    no_args = aggregate.learn([rec(BASE + ["socket"])])
    assert "socket" in no_args.rules.syscalls[X]
    assert any("no argument values were recorded" in x for x in no_args.rules.loose)


# --- capabilities -----------------------------------------------------------------------------------

def test_inferred_capabilities_with_reasons():
    r = rec(BASE + ["chown", "socket", "setuid", "mount"],
            [("socket", (AF_PACKET, RAW, 0))],
            net=[Endpoint("bind", "AF_INET", "0.0.0.0", 80, "tcp"), Endpoint("bind", "AF_INET", "0.0.0.0", 8080, "tcp")],
            results={"mount": -1})   # mount failed with EPERM: wanted, not needed
    p = aggregate.learn([r])
    assert p.rules.capabilities == ("CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETUID")
    caps = p.facts["capabilities"]
    assert all(caps[c]["inferred"] for c in caps)
    assert "port 80" in caps["CAP_NET_BIND_SERVICE"]["reasons"][0]
    assert caps["CAP_SYS_ADMIN"]["denied"] == 1 and not capabilities.needed(caps["CAP_SYS_ADMIN"])
    unused = capabilities.docker_defaults_unused(p.rules.capabilities)
    assert "CAP_MKNOD" in unused and "CAP_CHOWN" not in unused and len(unused) == 10


def test_kernel_checks_granted_and_audited_are_needs_noaudit_are_not():
    checks = [CapCheck("CAP_DAC_OVERRIDE", True, True, "openat"),
              CapCheck("CAP_SYS_ADMIN", True, False, "mmap"),     # __vm_enough_memory probe: no-audit
              CapCheck("CAP_SYS_PTRACE", False, True, "ptrace")]
    p = aggregate.learn([rec(BASE + ["chown"], caps=checks, backend="ebpf")])
    assert p.rules.capabilities == ("CAP_DAC_OVERRIDE",)       # no inference for eBPF recordings (no CHOWN)
    assert capabilities.wanted_not_granted(p.facts) == ["CAP_SYS_PTRACE"]


# --- merge --------------------------------------------------------------------------------------------

def _strip(p: Profile) -> tuple:
    return p.facts, p.rules


def test_merge_of_recordings_equals_learning_them():
    a = rec(BASE + ["socket"], [("socket", (AF_INET, STREAM, 0))], files=[("/etc/hosts", "read")])
    b = rec(BASE + ["ioctl"], [("ioctl", (TCGETS,))], files=[("/etc/passwd", "read")])
    learned = aggregate.learn([a, b])
    assert _strip(aggregate.merge([a, b])) == _strip(learned)
    merged_profiles = aggregate.merge([aggregate.learn([a]), aggregate.learn([b])])
    assert _strip(merged_profiles) == _strip(learned)
    assert [r["added"] for r in merged_profiles.runs] == [r["added"] for r in learned.runs]


def test_merge_keeps_each_runs_added_minus_what_earlier_items_had():
    a, b, c = (rec(BASE + [extra]) for extra in ("getpid", "getuid", "getpid"))
    two = aggregate.learn([b, c])        # c added getpid inside its own profile
    merged = aggregate.merge([aggregate.learn([a]), two])
    added = [r["added"].get("syscalls", {}).get(X, []) for r in merged.runs]
    assert added == [sorted(BASE + ["getpid"]), ["getuid"], []]
    assert merged.runs_without_growth == 1
    assert aggregate.merge([two, two]).runs == two.runs            # the same profile twice counts once


# --- denylist -----------------------------------------------------------------------------------------

def test_denylist_rules_deny_unused_dangers_only():
    p = aggregate.learn([rec(BASE + ["clone", "socket", "ptrace"], [("clone", (FORK_FLAGS,)),
                                                                     ("socket", (AF_INET, STREAM, 0))])],
                        {"style": "denylist"})
    assert p.rules.style == "denylist"
    d = p.rules.denylist[X]
    assert {"bpf", "unshare", "mount", "io_uring_setup", "userfaultfd"} <= set(d.names)
    assert "ptrace" not in d.names                    # used: cannot be denied
    deny = [r.args for r in d.conditional if r.names == ("clone",)]
    assert _admits(deny, {0: FORK_FLAGS | C.value("clone", "CLONE_NEWUSER")})
    assert not _admits(deny, {0: FORK_FLAGS})
    sock = [r.args for r in d.conditional if r.names == ("socket",)]
    assert _admits(sock, {0: AF_PACKET, 1: RAW}) and _admits(sock, {0: AF_INET, 1: RAW})
    # the kernel reads an int from the register: garbage in the upper 32 bits must not dodge the rule
    assert _admits(sock, {0: (1 << 32) | AF_PACKET, 1: RAW})
    assert not _admits(sock, {0: AF_INET, 1: STREAM})
    pers = [r.args for r in d.conditional if r.names == ("personality",)]
    assert _admits(pers, {0: C.value("personality", "ADDR_NO_RANDOMIZE")}) and not _admits(pers, {0: 0xFFFFFFFF})
    assert d.errno[0].names == ("clone3",)
    assert p.rules.syscalls[X]                     # the allowlist view is still there


# --- architectures ---------------------------------------------------------------------------------------

def test_translate_to_aarch64_and_s390x():
    p = aggregate.learn([rec(["open", "stat", "fork", "dup2", "arch_prctl", "read", "clone", "#999"],
                             [("clone", (FORK_FLAGS,))])])
    q, report = arches.translate(p, "aarch64")
    names = set(q.rules.syscalls["aarch64"]) | {n for r in q.rules.conditional["aarch64"] for n in r.names}
    assert all(syscalls.exists("aarch64", n) for n in names)
    assert {"openat", "newfstatat", "dup3", "clone", "read"} <= names
    assert {(t["from"], t["to"]) for t in report["translated"]} >= {("open", "openat"), ("fork", "clone")}
    assert {u["syscall"] for u in report["untranslatable"]} == {"arch_prctl", "#999"}
    s, rep = arches.translate(p, "s390x")
    assert _admits([r.args for r in s.rules.conditional["s390x"] if r.names == ("clone",)], {1: FORK_FLAGS})
    assert rep["arg_indexes"] == [{"syscall": "clone", "from": [0], "to": [1]}]
    arm, _ = arches.translate(p, "arm")
    assert "clock_gettime64" not in arm.rules.syscalls["arm"]    # only twins of calls that were made


# --- diff and check --------------------------------------------------------------------------------------

def test_diff_and_check_growth_and_danger():
    old = aggregate.learn([rec(BASE, files=[("/proc/123/status", "read")])])
    new = rec(BASE + ["bpf", "getpid"], files=[("/proc/456/status", "read")])
    d = diff(old, new)
    assert d["summary"]["syscall"]["added"] == 2 and d["summary"]["file"]["added"] == 0   # /proc/PID normalized
    res = check(old, new)
    assert res["grew"] and {c["label"] for c in res["dangerous"]} >= {"bpf"}
    assert not check(old, rec(BASE))["grew"]
    assert not check(old, new, kinds=["file"])["grew"]


def test_a_profile_keeps_its_rule_options_when_it_grows():
    p = aggregate.relearn(aggregate.learn([rec(BASE)]), {"style": "denylist", "args": "strict"})
    grown, added = aggregate.add_recording(p, rec(BASE + ["getpid"]))
    assert added["syscalls"] == {X: ["getpid"]}
    assert (grown.rules.style, grown.rules.args_mode) == ("denylist", "strict")
    assert grown.rules.denylist
