"""The exporters' one small interface, their options, and the registry the CLI picks from.

Each target is one module defining one :class:`Exporter` subclass decorated
with :func:`register`. ``leastpriv export --format NAME`` looks NAME up here.
Exporters are pure functions of a finished Profile: they read its ``rules``
(and the facts recorded when it was learned, policy/paths.py), never the host,
never re-learn, never write files (app.py writes what they return). Seccomp
exporters read the rules through policy/seccomp_model.py, the same
translation ``leastpriv run`` enforces.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..kernel import syscalls
from ..errors import UserError
from ..policy.runtime_base import runtime_note

# one module per target; imported on first use of the registry
_MODULES = ("oci", "docker", "k8s_seccompprofile", "k8s_apparmorprofile", "k8s_pod", "apparmor", "systemd",
            "landlock", "seccomp_pfc", "selinux")


@dataclass(frozen=True)
class ExportOptions:
    """What the user asked for; each exporter reads the fields it understands.

    complain  staging mode: log instead of deny (SCMP_ACT_LOG, AppArmor complain, ...)
    arch      the native ABI of the target machine (default: the profile's)
    runtime   the OCI runtime that installs the filter ("none", "runc", "crun": what it
              needs after installing the filter is allowed too)
    args      argument-rule mode to re-derive the rules with (strict/safe/off; None: as learned)
    style     allowlist/denylist (None: as learned)
    exact     only the syscalls traced: no harmless siblings (learner/siblings.py)
    name      the object's name (SPO object, AppArmor profile, container); "" = derived
    container the container to patch with k8s-pod
    manifest  a Kubernetes YAML file to patch (k8s-pod)
    bundle    an OCI bundle directory whose config.json is updated in place (oci)
    namespace Kubernetes namespace for SPO objects
    extra     anything else, by exporter
    """

    complain: bool = False
    arch: str | None = None
    runtime: str = "none"
    args: str | None = None
    style: str | None = None
    exact: bool = False
    name: str = ""
    container: str = ""
    manifest: str | None = None
    bundle: str | None = None
    namespace: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    """The exported document and what the user should know about it."""

    text: str
    notes: tuple[str, ...] = ()
    target: str | None = None       # the file this text replaces (oci --bundle: its config.json); app writes it


class Exporter(ABC):
    """One export target."""

    name: str = ""
    description: str = ""
    suffix: str = ".json"

    @abstractmethod
    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        """The profile in this target's format."""


_REGISTRY: dict[str, type[Exporter]] = {}


def register(cls: type[Exporter]) -> type[Exporter]:
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> Exporter:
    _load()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UserError(f"--format: unknown format {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


# ------------------------------------------------------------------ helpers

def dump_json(obj: Any) -> str:
    """A JSON export: two-space indent, keys in the order the format documents them, final newline."""
    import json

    return json.dumps(obj, indent=2) + "\n"


def native_arch(profile: Any, options: ExportOptions) -> str:
    """The ABI the export targets: --arch, else the profile's host, else this machine's."""
    if options.arch:
        return options.arch
    hosts = getattr(profile, "host_arches", [])
    return hosts[0] if len(hosts) == 1 else syscalls.host_arch()


def prepare(profile: Any, options: ExportOptions) -> tuple[Any, ExportOptions, list[str]]:
    """The options with the target ABI set (--arch, else the profile's). The profile comes finished: app.py
    re-derives its rules for --args/--style and translates it for --arch (learner/retarget.py) first."""
    return profile, replace(options, arch=native_arch(profile, options)), []


def model_notes(model: Any, fmt: str = "oci") -> list[str]:
    notes = list(model.notes)
    left_out = model.abis_left_out()
    if left_out:
        notes.append(f"ABIs: {', '.join(model.arches)} only (the workload ran no {'/'.join(left_out)} code): calls "
                     f"through those entry points are denied by the runtime's bad-architecture action")
    if model.runtime not in ("leastpriv",):
        note = runtime_note(model.runtime, fmt)
        if note:
            notes.append(note)
    for arch, names_ in sorted(model.skipped.items()):
        if names_:
            notes.append(f"{arch}: not on this ABI or not a known name, left out: {', '.join(names_)}")
    if model.complain:
        notes.append("complain mode: nothing is denied, denials are logged (SCMP_ACT_LOG: the audit log, or the "
                     "kernel log without auditd)")
    return notes
