"""The exporters' one small interface, their options, and the registry the CLI picks from.

Each target is one module defining one :class:`Exporter` subclass decorated
with :func:`register`. ``leastpriv export --format NAME`` looks NAME up here.
Exporters read the Profile's ``rules`` (learner/rules.py); seccomp exporters
read them through :mod:`.seccomp_model`, the same translation ``leastpriv
run`` enforces.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..kernel import syscalls
from ..errors import UserError

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
    written: tuple[str, ...] = ()   # files the exporter updated itself (oci --bundle, k8s-pod --manifest)


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
    """The profile as this export needs it: rules re-derived for --args/--style,
    translated for --arch. Returns (profile, options with arch set, notes)."""
    from ..learner import aggregate

    notes: list[str] = []
    rule_opts: dict[str, Any] = {}
    if options.args and options.args != profile.rules.get("args_mode", "safe"):
        rule_opts["args"] = options.args
    if options.style and options.style != profile.rules.get("style", "allowlist"):
        rule_opts["style"] = options.style
    if options.exact and not profile.rules.get("exact"):
        rule_opts["exact"] = True
    if rule_opts:
        rule_opts.setdefault("args", profile.rules.get("args_mode", "safe"))
        rule_opts.setdefault("style", profile.rules.get("style", "allowlist"))
        rule_opts.setdefault("exact", bool(profile.rules.get("exact")))
    target = native_arch(profile, options)
    learned = set(getattr(profile, "host_arches", []))
    try:
        if options.arch and learned and options.arch not in learned:
            from ..learner import arches
            profile, report = arches.translate(profile, options.arch, rule_opts or {
                "args": profile.rules.get("args_mode", "safe"), "style": profile.rules.get("style", "allowlist"),
                "exact": bool(profile.rules.get("exact"))})
            notes += _report_lines(report)
        elif rule_opts:
            profile = aggregate.relearn(profile, rule_opts)
    except (TypeError, ValueError) as exc:
        raise UserError(f"export: cannot re-derive the rules with {rule_opts}: {exc}") from None
    sibs = profile.rules.get("siblings", {})
    if any(sibs.values()):
        notes.append("harmless siblings added (--exact leaves them out): " + "; ".join(
            f"{a}: " + ", ".join(f"{s['name']} ({s['sibling_of']})" for s in v) for a, v in sorted(sibs.items()) if v))
    return profile, replace(options, arch=target), notes


def _report_lines(report: Any) -> list[str]:
    """arches.translate's report, as lines for the user."""
    if not isinstance(report, Mapping):
        return [str(report)] if report else []
    src, dst = report.get("source", "?"), report.get("target", "?")
    out = []
    if report.get("translated"):
        out.append(f"--arch {dst}: translated from {src}: " +
                   ", ".join(f"{t['from']} -> {t['to']}" for t in report["translated"]))
    if report.get("added_time64"):
        out.append(f"--arch {dst}: added time64 twins: " + ", ".join(t["to"] for t in report["added_time64"]))
    for t in report.get("untranslatable", []):
        out.append(f"--arch {dst}: {t['syscall']} left out: {t['why']}")
    for t in report.get("dropped_args", []):
        out.append(f"--arch {dst}: {t['syscall']} argument rules dropped: {t['why']}")
    for t in report.get("other_arches", []):
        out.append(f"--arch {dst}: {t['syscalls']} syscalls of {t['arch']} not carried over: {t['why']}")
    for t in report.get("arg_indexes", []):
        out.append(f"--arch {dst}: {t['syscall']} argument index {t['from']} -> {t['to']}")
    return out


def seccomp_rules_json(rules: list, *, comments: bool, arch: str) -> list[dict]:
    """Model rules -> the ``syscalls`` list of OCI/Docker/SPO (names, action, errnoRet, args)."""
    from ..policy.seccomp_model import ERRNO, errno_value

    out = []
    for r in rules:
        d: dict[str, Any] = {"names": list(r.names), "action": r.action}
        if r.action == ERRNO:
            d["errnoRet"] = errno_value(r.errno or "EPERM", arch)
        if r.args:
            d["args"] = [c.to_json() for c in r.args]
        if comments and r.comment:
            d["comment"] = r.comment
        out.append(d)
    return out


def model_notes(model: Any, fmt: str = "oci") -> list[str]:
    notes = list(model.notes)
    left_out = model.abis_left_out()
    if left_out:
        notes.append(f"ABIs: {', '.join(model.arches)} only (the workload ran no {'/'.join(left_out)} code): calls "
                     f"through those entry points are denied by the runtime's bad-architecture action")
    if model.runtime not in ("leastpriv",):
        from ..policy.runtime_base import runtime_note
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
