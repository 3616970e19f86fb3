"""Kubernetes: the container securityContext of a profile, the names of the objects it refers to, and the
Pod Security Standard level a securityContext meets. Pure; used by the k8s exporters and by ``review``.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

PSS_BASELINE_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                               "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
PSS_RESTRICTED_ADD = frozenset({"NET_BIND_SERVICE"})


def default_name(profile: Any) -> str:
    """The AppArmor profile name (and the base of the Kubernetes names): ``leastpriv-<command>``."""
    for run in getattr(profile, "runs", ()):
        cmd = run.get("command") or []
        if cmd:
            base = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.basename(cmd[0]))
            return f"leastpriv-{base}"
    return "leastpriv-profile"


def k8s_name(profile: Any, name: str = "") -> str:
    """A DNS-1123 name: ``name`` (--name), else from the workload's command."""
    raw = name or default_name(profile)
    out = re.sub(r"[^a-z0-9.-]+", "-", raw.lower()).strip("-.")[:253]
    return out or "leastpriv"


DEFAULT_NAMESPACE = "default"   # the SeccompProfile's namespace when neither --namespace nor a manifest says


def seccomp_localhost(name: str, namespace: str = "") -> str:
    """Where SPO installs SeccompProfile ``namespace/name`` below the kubelet's seccomp root."""
    return f"operator/{namespace or DEFAULT_NAMESPACE}/{name}.json"


def security_context(profile: Any, *, name: str = "", namespace: str = "", apparmor_name: str = "") -> dict:
    """The container securityContext for ``profile``: what ``export --format k8s-pod`` writes and what
    ``review`` judges."""
    rules = profile.rules
    caps = sorted(c.removeprefix("CAP_") for c in rules.capabilities)
    sc: dict[str, Any] = {}
    if rules.no_new_privileges:
        sc["allowPrivilegeEscalation"] = False
    sc["capabilities"] = {"drop": ["ALL"], **({"add": caps} if caps else {})}
    sc["privileged"] = False
    if profile.runs and all(int(r.get("uid", 0)) != 0 for r in profile.runs):
        sc["runAsNonRoot"] = True
    sc["seccompProfile"] = {"type": "Localhost",
                            "localhostProfile": seccomp_localhost(k8s_name(profile, name), namespace)}
    sc["appArmorProfile"] = {"type": "Localhost", "localhostProfile": apparmor_name or name or default_name(profile)}
    return sc


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
