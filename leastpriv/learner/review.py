"""The risk review a security reviewer reads. Pure: a profile in, a report dict out.

* dangerous syscalls, argument values and capabilities present, each with
  why it matters and a known CVE or exploit class (learner/risks.py);
* the comparison with Docker's default seccomp profile (data generated from
  moby's default.json by tools/gen_docker_default.py), evaluated like Docker
  does for one architecture and a capability set: a rule applies when the
  container has every capability in ``includes.caps`` and none in
  ``excludes.caps``, and the architecture is in ``includes.arches`` and not
  in ``excludes.arches`` (Go names: amd64, arm64, ...). ``minKernel`` is
  taken as met (every rule asks for 4.8 or older). Only names that exist on
  the architecture are counted;
* the Kubernetes Pod Security Standard level the exported securityContext
  meets;
* what each policy style (allowlist, denylist) leaves open.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping

from ..kernel import constants, syscalls
from . import risks
from .capabilities import capability_set, docker_defaults_unused, explain, wanted_not_granted
from .profile import Profile

# libseccomp architecture name -> Go's GOARCH, which Docker's includes/excludes use
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "x86": "386", "x32": "x32", "arm": "arm", "ppc64le": "ppc64le",
          "s390x": "s390x", "s390": "s390", "riscv64": "riscv64", "mips64": "mips64", "mipsel64": "mips64le",
          "loongarch64": "loong64"}

# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards)
PSS_BASELINE_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                               "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
PSS_RESTRICTED_ADD = frozenset({"NET_BIND_SERVICE"})


@lru_cache(maxsize=None)
def docker_default() -> dict:
    return json.loads(resources.files("leastpriv.policy").joinpath("docker_default.json").read_text())


def _applies(rule: Mapping, arch: str, caps: frozenset[str]) -> bool:
    goarch = GOARCH.get(arch, arch)
    inc, exc = rule.get("includes", {}), rule.get("excludes", {})
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if exc.get("arches") and goarch in exc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return True


def docker_allowed(arch: str, caps: Iterable[str] = risks.DOCKER_DEFAULT_CAPS) -> dict:
    """What Docker's default profile allows on ``arch`` for a container with ``caps``.

    ``unconditional``: names allowed whatever the arguments; ``conditional``:
    name -> list of argument-condition lists (alternatives); ``errno``: name ->
    errno answered. Names that do not exist on ``arch`` are left out.
    """
    capset = frozenset(caps)
    uncond: set[str] = set()
    cond: dict[str, list] = {}
    errno: dict[str, int] = {}
    for r in docker_default()["syscalls"]:
        if not _applies(r, arch, capset):
            continue
        names = [n for n in r["names"] if syscalls.exists(arch, n)]
        if r["action"] == "SCMP_ACT_ALLOW":
            for n in names:
                if r["args"]:
                    cond.setdefault(n, []).append(r["args"])
                else:
                    uncond.add(n)
        elif r["action"] == "SCMP_ACT_ERRNO":
            for n in names:
                errno[n] = r.get("errnoRet") or 1
    for n in uncond:
        cond.pop(n, None)
    return {"unconditional": sorted(uncond), "conditional": {n: v for n, v in sorted(cond.items())},
            "errno": dict(sorted(errno.items()))}


def _match(cond: Mapping, values_by_index: Mapping[int, int]) -> bool | None:
    v = values_by_index.get(cond["index"])
    if v is None:
        return None
    a, b, op = cond["value"], cond.get("valueTwo", 0), cond["op"]
    return {"SCMP_CMP_EQ": v == a, "SCMP_CMP_NE": v != a, "SCMP_CMP_LT": v < a, "SCMP_CMP_LE": v <= a,
            "SCMP_CMP_GT": v > a, "SCMP_CMP_GE": v >= a, "SCMP_CMP_MASKED_EQ": (v & a) == b}[op]


def docker_comparison(profile: Profile, arch: str) -> dict:
    """Counts and lists: what Docker's default allows that this workload never used, and the reverse."""
    caps = frozenset(risks.DOCKER_DEFAULT_CAPS)
    d = docker_allowed(arch, caps)
    docker_names = set(d["unconditional"]) | set(d["conditional"])
    used = {n for n in profile.facts.get("syscalls", {}).get(arch, {}) if not n.startswith("#")}
    args = profile.facts.get("args", {}).get(arch, {})
    denied_values = []
    for name in sorted(used & set(d["conditional"])):
        spec = syscalls.tracked_args(arch, name)
        if spec is None:
            continue
        for e in args.get(name, []):
            by_index = dict(zip(spec.indexes, (int(x) for x in e["values"])))
            ok = any(all(_match(c, by_index) is not False for c in alt) for alt in d["conditional"][name])
            if not ok:
                denied_values.append(f"{name}({e.get('describe', e['values'])})")
    never = sorted(docker_names - used)
    beyond = sorted(used - docker_names)
    return {
        "arch": arch,
        "capabilities": sorted(caps),
        "docker_allowed": len(docker_names),
        "docker_unconditional": len(d["unconditional"]),
        "docker_conditional": sorted(d["conditional"]),
        "workload_used": len(used),
        "both": len(used & docker_names),
        "docker_allows_never_used": len(never),
        "docker_allows_never_used_names": never,
        "dangerous_docker_allows_never_used": sorted(n for n in never if n in risks.SYSCALLS),
        "used_not_in_docker_default": beyond,
        "values_docker_would_deny": denied_values,
        "note": "Docker's profile allows more when the container has more capabilities (CAP_SYS_ADMIN adds "
                "mount, unshare, bpf, ...): counted here for Docker's 14 default capabilities",
    }


# --- Kubernetes Pod Security Standards ---------------------------------------------------------

def security_context(profile: Profile) -> dict:
    """The container securityContext the Kubernetes export writes for this profile: the level is
    judged on what is really exported (the exporter's own function, not a second copy of its rules)."""
    from ..exporters.k8s_pod import security_context as exported

    return exported(profile)


def pss_level(sc: Mapping) -> dict:
    """The highest Pod Security Standard level (restricted, baseline, privileged) a securityContext meets."""
    baseline_fail, restricted_fail = [], []
    if sc.get("privileged"):
        baseline_fail.append("privileged: true")
    add = {c.removeprefix("CAP_") for c in sc.get("capabilities", {}).get("add", [])}
    extra = sorted(add - PSS_BASELINE_CAPS)
    if extra:
        baseline_fail.append(f"adds capabilities outside the baseline set: {', '.join(extra)}")
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        baseline_fail.append("seccompProfile Unconfined")
    if sc.get("allowPrivilegeEscalation") is not False:
        restricted_fail.append("allowPrivilegeEscalation is not false (the workload changes ids or capabilities)")
    if "ALL" not in [c.upper() for c in sc.get("capabilities", {}).get("drop", [])]:
        restricted_fail.append("capabilities.drop does not include ALL")
    beyond = sorted(add - PSS_RESTRICTED_ADD)
    if beyond:
        restricted_fail.append(f"adds capabilities other than NET_BIND_SERVICE: {', '.join(beyond)}")
    if sc.get("runAsNonRoot") is not True and not (isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] != 0):
        restricted_fail.append("runAsNonRoot is not true (the learning runs ran as root)")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        restricted_fail.append("seccompProfile is not RuntimeDefault or Localhost")
    level = "privileged" if baseline_fail else "baseline" if restricted_fail else "restricted"
    return {"level": level, "baseline_violations": baseline_fail, "restricted_violations": restricted_fail}


# --- what each style leaves open ------------------------------------------------------------------

def styles(profile: Profile, arch: str) -> dict:
    from .denylist import denylist_rules

    facts = profile.facts
    used = {n for n in facts.get("syscalls", {}).get(arch, {}) if not n.startswith("#")}
    rules = profile.rules
    allowed = set(rules.get("syscalls", {}).get(arch, []))
    conditional = rules.get("conditional", {}).get(arch, [])
    table = set(syscalls.table(arch))
    dl = denylist_rules(arch, facts)
    dangerous_used = sorted(n for n in used if n in risks.SYSCALLS)
    return {
        "allowlist": {
            "allowed": len(allowed) + len({n for r in conditional for n in r["names"]}),
            "unconditional": len(allowed),
            "conditional_rules": len(conditional),
            "open": [f"the {len(used)} syscalls the workload used, with any argument not constrained",
                     *(f"loose: {x}" for x in rules.get("loose", []) if x.startswith(arch + ":"))]
                    + ([f"dangerous syscalls it used stay allowed: {', '.join(dangerous_used)}"] if dangerous_used else []),
            "denies": f"the {len(table) - len(allowed | {n for r in conditional for n in r['names']})} "
                      f"other syscalls of {arch}, including every new one a libc update may start using",
        },
        "denylist": {
            "denied_names": len(dl["names"]),
            "conditional_rules": len(dl["conditional"]),
            "allowed": len(table) - len(dl["names"]),
            "allowed_never_used": len(table - set(dl["names"]) - used),
            "open": [f"{len(table - set(dl['names']) - used)} syscalls the workload never used stay allowed "
                     "(robust to libc updates, but a larger surface)",
                     "argument values outside the review list (prctl options, most ioctls, PROT_EXEC) are not checked"]
                    + ([f"dangerous syscalls it used cannot be denied: {', '.join(dangerous_used)}"] if dangerous_used else []),
        },
    }


# --- the report ---------------------------------------------------------------------------------

def review(profile: Profile, arch: str | None = None, reach: bool = True) -> dict:
    """The review report. ``reach``: add static coverage (the executables are read from this machine)."""
    from .generalization import lines as generalization_lines

    translation = None
    if arch is not None and arch not in profile.facts.get("syscalls", {}):
        from .arches import translate
        profile, translation = translate(profile, arch, {"args": profile.rules.get("args_mode", "safe"),
                                                         "style": profile.rules.get("style", "allowlist")})
    facts = profile.facts
    arches = sorted(facts.get("syscalls", {}))
    main = arch or (profile.host_arches[0] if profile.host_arches and profile.host_arches[0] in arches
                    else (arches[0] if arches else syscalls.host_arch()))
    dangerous_sys = []
    for a in arches:
        for name, st in sorted(facts["syscalls"][a].items()):
            r = risks.SYSCALLS.get(name)
            if r:
                dangerous_sys.append({"arch": a, "name": name, "count": st.get("count", 0), "runs": st.get("runs", 0),
                                      "why": r.why, "example": r.example})
    dangerous_args = []
    for a, table in sorted(facts.get("args", {}).items()):
        for sc, entries in sorted(table.items()):
            for e in entries:
                for what, why, ex in risks.dangerous_values(sc, tuple(int(v) for v in e["values"])):
                    dangerous_args.append({"arch": a, "syscall": sc, "what": what, "values": e.get("describe", ""),
                                           "count": e.get("count", 0), "why": why, "example": ex})
    caps = capability_set(facts)
    cap_rows = {r["cap"]: r for r in explain(facts)}
    dangerous_caps = [{"cap": c, "why": risks.CAPABILITIES[c].why, "example": risks.CAPABILITIES[c].example,
                       "how": cap_rows.get(c, {}).get("how", "")} for c in caps if c in risks.CAPABILITIES]
    sc = security_context(profile)
    return {
        "arch": main,
        "runs": len(profile.runs),
        "runs_without_growth": profile.runs_without_growth,
        "dangerous_syscalls": dangerous_sys,
        "dangerous_args": dangerous_args,
        "capabilities": {
            "needed": caps,
            "dangerous": dangerous_caps,
            "docker_default_never_used": docker_defaults_unused(caps),
            "beyond_docker_default": sorted(set(caps) - set(risks.DOCKER_DEFAULT_CAPS)),
            "wanted_not_granted": wanted_not_granted(facts),
            "details": list(cap_rows.values()),
        },
        "docker": docker_comparison(profile, main),
        "pod_security": {**pss_level(sc), "securityContext": sc},
        "styles": styles(profile, main),
        "loose": list(profile.rules.get("loose", [])),
        "generalization": generalization_lines(profile),
        "seen_in_one_run_only": profile.seen_in_one_run(),
        "unknown_syscalls": {a: v for a, v in facts.get("unknown_syscalls", {}).items() if v},
        "verdict": _verdict(dangerous_sys, dangerous_args, dangerous_caps),
        "translated": translation,
        "reach": _reach(facts, profile.runs) if reach else None,
    }


def _reach(facts, runs) -> dict:
    from ..reach.coverage import review_section
    return review_section(facts, runs)


def _verdict(ds: list, da: list, dc: list) -> str:
    n = len(ds) + len(da) + len(dc)
    if not n:
        return "no dangerous syscall, argument value or capability in use"
    return f"{n} dangerous item{'s' * (n != 1)} in use: each needs a reason before this profile ships"


def name_of_value(group: str, v: int) -> str:  # small helper for renderers
    return constants.describe(group, v)
