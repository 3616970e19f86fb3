"""Security review of a container image: learned facts + the image's own contents.

The report (JSON-shaped dict; ui/image_review.py renders it with rich, or as markdown):

* identity: image name, command, user; **runs as root** or not;
* capabilities: granted by default (Docker's 14) vs used (learned), and whether
  the container was *proved* to run with only the learned set (a run with
  exactly those capabilities that exits as the learning run did);
* syscalls Docker's default profile allows that the workload never used, and
  dangerous syscalls it does use (the learner's risk catalogue);
* setuid/setgid files (as the image had them; unpacking strips the bits) and
  world-writable paths in the rootfs;
* ready-to-apply artifacts: the OCI config fragment (seccomp with the runtime
  base, capabilities, noNewPrivileges) and a Kubernetes securityContext.
"""
from __future__ import annotations

import re

from ..kernel import syscalls
from ..oci.bundle import DOCKER_DEFAULT_CAPS
from ..oci.image import UnpackReport, scan_rootfs
from ..policy import docker_default, risks
from ..policy import seccomp_model as sm


def build_report(*, image: str, name: str, conf: dict, profile, unpack: UnpackReport | None, rootfs: str,
                 runtime: str, caps_proved: bool | None, learn_exit: int | None, scan: dict | None = None) -> dict:
    arch = syscalls.host_arch()
    uid = int(conf["process"]["user"].get("uid", 0))
    used_caps = sorted(profile.rules.capabilities)
    cap_facts = profile.facts.get("capabilities", {})
    caps_observed = any(r.get("backend") == "ebpf" for r in profile.runs) or bool(cap_facts)
    default_caps = sorted(conf["process"].get("capabilities", {}).get("bounding", DOCKER_DEFAULT_CAPS))
    used = set(profile.syscall_names(arch))
    docker_allowed = set(docker_default.allowed(arch, DOCKER_DEFAULT_CAPS).names)
    dangerous = []
    for n in sorted(used):
        r = risks.SYSCALLS.get(n)
        if r:
            dangerous.append({"syscall": n, "why": r.why, "example": r.example})
    for n, entries in sorted(profile.facts.get("args", {}).get(arch, {}).items()):
        for e in entries:
            for what, why, ex in risks.dangerous_values(n, tuple(e["values"])):
                dangerous.append({"syscall": what, "why": why, "example": ex})
    nnp = profile.rules.no_new_privileges
    rt = runtime if runtime == "none" or nnp else f"{runtime}:new-privileges"
    k8s = {"securityContext": {
        "allowPrivilegeEscalation": not nnp,
        "capabilities": {"drop": ["ALL"], **({"add": [c.removeprefix("CAP_") for c in used_caps]} if used_caps else {})},
        "seccompProfile": {"type": "Localhost", "localhostProfile": f"leastpriv/{_slug(name)}.json"},
        **({"runAsNonRoot": True, "runAsUser": uid} if uid != 0 else {}),
    }}
    findings = []
    if uid == 0:
        findings.append("runs as root (uid 0): set a non-root User in the image, or runAsUser/runAsNonRoot")
    unused = sorted(set(default_caps) - set(used_caps))
    if caps_proved and not used_caps:
        findings.append(f"never uses its default capabilities: ran with none and behaved the same; drop all "
                        f"{len(default_caps)} ({', '.join(c.removeprefix('CAP_') for c in default_caps)})")
    elif caps_proved:
        findings.append(f"needs only {', '.join(used_caps)}: ran with exactly those and behaved the same; "
                        f"drop the other {len(unused)}")
    elif unused:
        findings.append(f"{len(unused)} default capabilities not seen in use (not proved by a run)")
    if unpack and unpack.setuid_files:
        findings.append(f"{len(unpack.setuid_files)} setuid/setgid files in the image")
    ww = scan if scan is not None else scan_rootfs(rootfs)
    if ww["world_writable"]:
        findings.append(f"{len(ww['world_writable'])} world-writable paths outside sticky directories")
    if dangerous:
        findings.append("uses dangerous syscalls: " + ", ".join(sorted({d['syscall'] for d in dangerous})))
    return {
        "image": image, "name": name, "command": conf["process"]["args"], "user": {"uid": uid,
                                                                                   "gid": conf["process"]["user"].get("gid", 0)},
        "runs_as_root": uid == 0,
        "learn_exit_status": learn_exit,
        "capabilities": {"granted_by_default": default_caps, "used": used_caps,
                         "unused_defaults": unused, "observed": caps_observed,
                         "proved_by_run": caps_proved},
        "syscalls": {"used": sorted(used), "docker_default_allows_unused": sorted(docker_allowed - used),
                     "dangerous_used": dangerous},
        "rootfs": {"setuid_setgid_files": list(unpack.setuid_files) if unpack else [], **ww,
                   "unpack_neutralized": list(unpack.neutralized) if unpack else []},
        "findings": findings,
        "artifacts": {"oci": {"process": {"capabilities": {k: used_caps for k in ("bounding", "effective", "permitted")},
                                          "noNewPrivileges": nnp},
                              "linux": {"seccomp": _exported(profile, rt)}},
                      "kubernetes": k8s, "runtime": rt},
    }


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-") or "image"


def _exported(profile, runtime: str) -> dict:
    return sm.to_oci(sm.build(profile, runtime=runtime))
