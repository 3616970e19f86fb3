"""The runtime base: syscalls the OCI runtime itself makes after it installs the
container's seccomp filter and before (and including) the workload's execve.

An exported container profile must allow them or the container does not start.
The data (``leastpriv/policy/runtime_base.json``) is measured by
``tools/measure_runtime_base.py`` per runtime, version and noNewPrivileges
mode (runc installs the filter late with noNewPrivileges, before dropping
capabilities and changing user without it, so the lists differ a lot).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from ..kernel.data import get_data
from ..errors import UserError

RUNTIMES = ("runc", "crun", "none")


@dataclass(frozen=True)
class RuntimeBase:
    runtime: str                 # "runc" | "crun" | "none"
    version: str                 # the data's version ("" for none)
    no_new_privileges: bool
    syscalls: tuple[str, ...]    # measured (plus the Go runtime's scheduler calls for runc)
    required: tuple[str, ...]    # the ones the runtime fails without (when measured)
    source: str                  # how the list was obtained
    note: str = ""               # e.g. "runc 1.1.9 asked; data for 1.1.5 used"

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "version": self.version, "no_new_privileges": self.no_new_privileges,
                "syscalls": list(self.syscalls), "required": list(self.required), "source": self.source,
                "note": self.note}


@lru_cache(maxsize=None)
def _data() -> dict:
    try:
        return json.loads(get_data(__package__, "runtime_base.json"))
    except FileNotFoundError:  # pragma: no cover
        return {"runtimes": {}}


def _vkey(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def known() -> dict[str, list[str]]:
    return {rt: sorted(vs, key=_vkey) for rt, vs in _data().get("runtimes", {}).items()}


def runtime_base(runtime: str = "runc", version: str | None = None, no_new_privileges: bool = True,
                 arch: str = "x86_64") -> RuntimeBase:
    """The syscalls ``runtime`` (at ``version``, default: the newest measured) needs after the filter."""
    if runtime == "none":
        return RuntimeBase("none", "", no_new_privileges, (), (), "none asked for (--runtime none)")
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime: unknown runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    versions = _data().get("runtimes", {}).get(runtime, {})
    if not versions:
        raise UserError(f"--runtime {runtime}: no runtime base data (run tools/measure_runtime_base.py)")
    note = ""
    if version and version in versions:
        chosen = version
    else:
        ordered = sorted(versions, key=_vkey)
        chosen = ordered[-1]
        if version:
            older = [v for v in ordered if _vkey(v) <= _vkey(version)]
            chosen = older[-1] if older else ordered[0]
            note = f"{runtime} {version} asked for; data measured for {chosen} used"
    entry = versions[chosen]
    mode = entry.get("no_new_privileges" if no_new_privileges else "new_privileges") or {}
    names = set(mode.get("syscalls", {}).get(arch, []))
    go = set(entry.get("go_runtime", {}).get(arch, []))
    if not names:
        measured_on = sorted(mode.get("syscalls", {}))
        if not measured_on:
            raise UserError(f"--runtime {runtime}: no runtime base for {arch}")
        # not measured on this ABI: the same operations by name (names the ABI lacks are left out by the model)
        src = measured_on[0]
        names = set(mode["syscalls"][src])
        go = set(entry.get("go_runtime", {}).get(src, []))
        note = (note + "; " if note else "") + f"not measured on {arch}: {src}'s list used by name"
    names |= go
    m = entry.get("measured", {})
    source = m.get("source") or f"measured {m.get('date', '?')} on kernel {m.get('kernel', '?')} ({m.get('method', '')})"
    return RuntimeBase(runtime, chosen, no_new_privileges, tuple(sorted(names)),
                       tuple(mode.get("required", {}).get(arch, [])), source, note)


def extra_syscalls(runtime: str, no_new_privileges: bool, arch: str, version: str | None = None) -> list[str]:
    """The extension point for exporters: syscall names to add to an exported container profile."""
    return list(runtime_base(runtime, version, no_new_privileges, arch).syscalls)


# formats a container runtime enforces: they carry the runtime base unless --runtime none
CONTAINER_FORMATS = ("oci", "docker", "k8s-seccompprofile", "k8s-pod")
# formats that cannot set noNewPrivileges: Docker's and Podman's default runs without it
WITHOUT_NNP_FORMATS = ("docker", "k8s-seccompprofile")


def export_runtime(profile, asked: str | None, fmt: str = "oci") -> str:
    """The seccomp-model runtime name for an export of ``fmt``.

    ``asked`` (None: runc for the formats a container runtime enforces, none for the others). The
    base depends on noNewPrivileges: ``oci`` sets it (from the profile) and carries that mode's base;
    ``docker`` and ``k8s-seccompprofile`` cannot set it, and Docker's and Podman's default
    (``docker run --security-opt seccomp=FILE``) runs without it, so they carry the base of the mode
    without noNewPrivileges (runc installs the filter before it changes capabilities and user, and
    needs more), which also covers the smaller base of ``--security-opt no-new-privileges``.
    """
    runtime = asked
    if runtime is None:
        # docker/k8s-seccompprofile: Docker runs runc, Podman (and CRI-O) crun by default: both bases
        runtime = "none" if fmt not in CONTAINER_FORMATS else "runc+crun" if fmt in WITHOUT_NNP_FORMATS else "runc"
    if runtime in ("runc", "crun", "runc+crun") and (fmt in WITHOUT_NNP_FORMATS or
                                                     not profile.rules.no_new_privileges):
        runtime = f"{runtime}:new-privileges"
    return runtime


def runtime_note(runtime: str, fmt: str) -> str:
    """What the export's runtime base is, for its notes."""
    if runtime == "none":
        return ("no runtime base (--runtime none): an OCI runtime needs some syscalls after installing the filter; "
                "this profile alone may not start a container") if fmt in CONTAINER_FORMATS else ""
    rts, _, mode = runtime.partition(":")
    bases = [runtime_base(rt, None, mode != "new-privileges") for rt in rts.split("+")]
    names = set().union(*(b.syscalls for b in bases))
    what = " and ".join(f"{b.runtime} {b.version}" + ("" if b.source.startswith("measured") else
                                                       f" (NOT measured here: {b.source})") for b in bases)
    if mode == "new-privileges":
        return (f"includes the base of {what} without noNewPrivileges ({len(names)} syscalls, measured with "
                f"strace): works under Docker's and Podman's default and with --security-opt no-new-privileges; "
                f"seccomp cannot tell the runtime from the workload, so these are allowed to the workload too "
                f"(--runtime none leaves them out)")
    return (f"includes the base of {what} with noNewPrivileges ({len(names)} syscalls); --runtime none leaves it out")
