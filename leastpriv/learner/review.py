"""The risk review a security reviewer reads. Pure: a profile in, a report dict out.

* dangerous syscalls, argument values and capabilities present, each with
  why it matters and a known CVE or exploit class (policy/risks.py);
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


from ..kernel import constants, syscalls
from ..policy import docker_default, risks
from ..policy.pod_security import pss_level, security_context
from .capabilities import capability_set, docker_defaults_unused, explain, wanted_not_granted
from .profile import Profile
from ..policy.denylist import denylist_rules
from .arches import translate
from .generalization import lines as generalization_lines

# Pod Security Standards: policy/pod_security.py; Docker's default: policy/docker_default.py


def docker_comparison(profile: Profile, arch: str) -> dict:
    """Counts and lists: what Docker's default allows that this workload never used, and the reverse."""
    caps = frozenset(risks.DOCKER_DEFAULT_CAPS)
    d = docker_default.allowed(arch, caps)
    docker_names = set(d.names)
    used = {n for n in profile.facts.get("syscalls", {}).get(arch, {}) if not n.startswith("#")}
    args = profile.facts.get("args", {}).get(arch, {})
    denied_values = []
    for name in sorted(used & set(d.conditional)):
        spec = syscalls.tracked_args(arch, name)
        if spec is None:
            continue
        for e in args.get(name, []):
            by_index = dict(zip(spec.indexes, (int(x) for x in e["values"])))
            if d.allows(name, by_index) is False:
                denied_values.append(f"{name}({e.get('describe', e['values'])})")
    never = sorted(docker_names - used)
    beyond = sorted(used - docker_names)
    return {
        "arch": arch,
        "capabilities": sorted(caps),
        "docker_allowed": len(docker_names),
        "docker_unconditional": len(d.unconditional),
        "docker_conditional": sorted(d.conditional),
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

# --- what each style leaves open ------------------------------------------------------------------

def styles(profile: Profile, arch: str) -> dict:

    facts = profile.facts
    used = {n for n in facts.get("syscalls", {}).get(arch, {}) if not n.startswith("#")}
    rules = profile.rules
    allowed = set(rules.allowed(arch))
    conditional = rules.conditional_of(arch)
    table = set(syscalls.table(arch))
    dl = denylist_rules(arch, facts)
    dangerous_used = sorted(n for n in used if n in risks.SYSCALLS)
    return {
        "allowlist": {
            "allowed": len(allowed) + len({n for r in conditional for n in r.names}),
            "unconditional": len(allowed),
            "conditional_rules": len(conditional),
            "open": [f"the {len(used)} syscalls the workload used, with any argument not constrained",
                     *(f"loose: {x}" for x in rules.loose if x.startswith(arch + ":"))]
                    + ([f"dangerous syscalls it used stay allowed: {', '.join(dangerous_used)}"] if dangerous_used else []),
            "denies": f"the {len(table) - len(allowed | {n for r in conditional for n in r.names})} "
                      f"other syscalls of {arch}, including every new one a libc update may start using",
        },
        "denylist": {
            "denied_names": len(dl.names),
            "conditional_rules": len(dl.conditional),
            "allowed": len(table) - len(dl.names),
            "allowed_never_used": len(table - set(dl.names) - used),
            "open": [f"{len(table - set(dl.names) - used)} syscalls the workload never used stay allowed "
                     "(robust to libc updates, but a larger surface)",
                     "argument values outside the review list (prctl options, most ioctls, PROT_EXEC) are not checked"]
                    + ([f"dangerous syscalls it used cannot be denied: {', '.join(dangerous_used)}"] if dangerous_used else []),
        },
    }


# --- the report ---------------------------------------------------------------------------------

def review(profile: Profile, arch: str | None = None, reach: bool = True) -> dict:
    """The review report. ``reach``: add static coverage (the executables are read from this machine)."""

    translation = None
    if arch is not None and arch not in profile.facts.get("syscalls", {}):
        profile, translation = translate(profile, arch, profile.rules.rule_options())
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
    sc = security_context(profile)   # what the k8s-pod export writes
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
        "loose": list(profile.rules.loose),
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
