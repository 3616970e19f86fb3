"""Security review of a container image: learned facts + the image's own contents.

The report (JSON-shaped dict; rendered with rich, or as markdown):

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

import json
import stat

from ..kernel import syscalls
from ..oci.bundle import DOCKER_DEFAULT_CAPS
from ..oci.image import UnpackReport, iter_rootfs


def docker_default_allowed(arch: str) -> set[str]:
    """Names Docker's default profile allows unconditionally or by argument, for a default container."""
    from importlib import resources

    d = json.loads(resources.files("leastpriv.policy").joinpath("docker_default.json").read_text())
    out: set[str] = set()
    for r in d["syscalls"]:
        if r.get("action") != "SCMP_ACT_ALLOW":
            continue
        inc = r.get("includes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= set(DOCKER_DEFAULT_CAPS):
            continue
        exc = r.get("excludes") or {}
        if exc.get("caps") and set(exc["caps"]) & set(DOCKER_DEFAULT_CAPS):
            continue
        if inc.get("arches") and not ({"amd64", "x86_64", "x32", "386"} & set(inc["arches"])) and arch == "x86_64":
            continue
        out.update(r["names"])
    known = set(syscalls.table(arch))
    return out & known


def scan_rootfs(root: str, limit: int = 200) -> dict:
    world_writable, sticky_dirs = [], []
    for path, st in iter_rootfs(root):
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & stat.S_IWOTH:
            if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
                sticky_dirs.append(path)
            else:
                world_writable.append(path)
    return {"world_writable": sorted(world_writable)[:limit], "world_writable_sticky_dirs": sorted(sticky_dirs)[:limit]}


def build_report(*, image: str, name: str, conf: dict, profile, unpack: UnpackReport | None, rootfs: str,
                 runtime: str, caps_proved: bool | None, learn_exit: int | None, scan: dict | None = None) -> dict:
    from ..learner import risks

    arch = syscalls.host_arch()
    uid = int(conf["process"]["user"].get("uid", 0))
    used_caps = sorted(profile.rules.get("capabilities", []))
    cap_facts = profile.facts.get("capabilities", {})
    caps_observed = any(r.get("backend") == "ebpf" for r in profile.runs) or bool(cap_facts)
    default_caps = sorted(conf["process"].get("capabilities", {}).get("bounding", DOCKER_DEFAULT_CAPS))
    used = set(profile.syscall_names(arch))
    docker_allowed = docker_default_allowed(arch)
    dangerous = []
    for n in sorted(used):
        r = risks.SYSCALLS.get(n)
        if r:
            dangerous.append({"syscall": n, "why": r.why, "example": r.example})
    for n, entries in sorted(profile.facts.get("args", {}).get(arch, {}).items()):
        for e in entries:
            for what, why, ex in risks.dangerous_values(n, tuple(e["values"])):
                dangerous.append({"syscall": what, "why": why, "example": ex})
    nnp = bool(profile.rules.get("no_new_privileges", True))
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
    import re
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-") or "image"


def markdown(r: dict) -> str:
    lines = [f"# Security review: {r['name'] or r['image']}", "",
             f"- command: `{' '.join(r['command'])}`",
             f"- user: uid {r['user']['uid']} ({'**root**' if r['runs_as_root'] else 'not root'})", "", "## Findings", ""]
    lines += [f"- {f}" for f in r["findings"]] or ["- none"]
    c = r["capabilities"]
    lines += ["", "## Capabilities", "", f"- granted by default: {', '.join(c['granted_by_default']) or 'none'}",
              f"- used: {', '.join(c['used']) or 'none'}" + ("" if c["observed"] else " (capability checks not observed "
                                                                                   "by this backend)"),
              f"- proved by a run with only those: {c['proved_by_run']}"]
    s = r["syscalls"]
    lines += ["", "## Syscalls", "", f"- used: {len(s['used'])}",
              f"- allowed by Docker's default but never used: {len(s['docker_default_allows_unused'])}: "
              + " ".join(s["docker_default_allows_unused"])]
    lines += [f"- dangerous: `{d['syscall']}`: {d['why']} ({d['example']})" for d in s["dangerous_used"]]
    fs = r["rootfs"]
    lines += ["", "## Rootfs", "", f"- setuid/setgid files: {', '.join(fs['setuid_setgid_files']) or 'none'}",
              f"- world-writable: {', '.join(fs['world_writable']) or 'none'}",
              "", "## Apply", "", "Kubernetes container securityContext:", "", "```json",
              json.dumps(r["artifacts"]["kubernetes"], indent=2), "```", "",
              "OCI config.json fragment (seccomp includes the runtime base of "
              f"`{r['artifacts']['runtime']}`):", "", "```json", json.dumps(r["artifacts"]["oci"], indent=2), "```", ""]
    return "\n".join(lines)


def render(r: dict, out=None) -> None:
    """The review on a terminal. Everything from the image (names, paths, the command) is data: escaped,
    never read as rich markup (a file named ``evil[/]x`` is printed as it is)."""
    from rich.markup import escape
    from rich.table import Table

    from . import console
    out = out or console.out

    def e(x) -> str:
        return escape(str(x))
    out.print(f"[bold]review[/] [cyan]{e(r['name'] or r['image'])}[/]: {e(' '.join(r['command']))}")
    out.print(("[red]runs as root[/]" if r["runs_as_root"] else "[green]runs as a non-root user[/]")
              + f" (uid {e(r['user']['uid'])})")
    for f in r["findings"]:
        out.print(f"  [yellow]•[/] {e(f)}")
    t = Table(title="capabilities", title_justify="left", show_edge=False)
    t.add_column("capability")
    t.add_column("default")
    t.add_column("used")
    c = r["capabilities"]
    for cap in sorted(set(c["granted_by_default"]) | set(c["used"])):
        t.add_row(e(cap), "yes" if cap in c["granted_by_default"] else "", "[red]yes[/]" if cap in c["used"] else "")
    out.print(t)
    s = r["syscalls"]
    out.print(f"syscalls used: {len(s['used'])}; allowed by Docker's default but never used: "
              f"{len(s['docker_default_allows_unused'])}")
    for d in s["dangerous_used"]:
        out.print(f"  [red]{e(d['syscall'])}[/]: {e(d['why'])}")
    fs = r["rootfs"]
    out.print(f"setuid/setgid files: {e(', '.join(fs['setuid_setgid_files']) or 'none')}")
    out.print(f"world-writable paths: {e(', '.join(fs['world_writable']) or 'none')}")
    out.print("[dim]--format json or markdown for the ready-to-apply OCI and Kubernetes artifacts[/]")


def _exported(profile, runtime: str) -> dict:
    from ..exporters.base import ExportOptions
    from ..exporters.oci import seccomp_object
    return seccomp_object(profile, ExportOptions(runtime=runtime))[0]
