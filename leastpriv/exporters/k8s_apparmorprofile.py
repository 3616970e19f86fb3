"""Security Profiles Operator ``AppArmorProfile`` (security-profiles-operator.x-k8s.io/v1).

SPO's v1 AppArmorProfile takes an ``abstract`` (allow lists) that the operator
turns into a profile on each node: executables, libraries, read-only /
write-only / read-write paths (globbed like the apparmor export), TCP/UDP/raw
sockets and capabilities (lowercase, without CAP_). ``--complain`` sets
``mode: Complain``.
"""
from __future__ import annotations

from typing import Any

from ..policy import paths
from ..policy.pod_security import k8s_name
from .apparmor import attachment, glob_path, network_rules, path_rules
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from .escape import expressible_files
from .k8s_seccompprofile import API_VERSION, dump_yaml


def abstract(profile: Any) -> dict:
    """SPO's allow lists from the same globbed file rules the apparmor export writes."""
    rules = profile.rules
    execs, libs, ro, wo, rw = set(), set(), set(), set(), set()
    for fr in path_rules(rules, attachment(profile), paths.of(profile)):
        if "x" in fr.modes:
            execs.add(fr.path)
        elif "m" in fr.modes and "w" not in fr.modes:
            libs.add(fr.path)
        elif "r" in fr.modes and "w" in fr.modes:
            rw.add(fr.path)
        elif "w" in fr.modes:
            wo.add(fr.path)
        else:
            ro.add(fr.path)
    attach = attachment(profile)
    if attach:
        execs.add(glob_path(attach))
        libs.discard(glob_path(attach))
    out: dict[str, Any] = {}
    if execs or libs:
        out["executable"] = {k: sorted(v) for k, v in (("allowedExecutables", execs), ("allowedLibraries", libs)) if v}
    fs = {k: sorted(v) for k, v in (("readOnlyPaths", ro), ("writeOnlyPaths", wo), ("readWritePaths", rw)) if v}
    if fs:
        out["filesystem"] = fs
    net = network_rules(profile.facts)
    tcp = any(n.startswith(("inet ", "inet6 ")) and n.endswith("stream") for n in net)
    udp = any(n.startswith(("inet ", "inet6 ")) and n.endswith("dgram") for n in net)
    raw = any(n.endswith(" raw") or n.startswith("packet") for n in net)
    out["network"] = {"allowRaw": raw, "allowedProtocols": {"allowTcp": tcp, "allowUdp": udp}}
    caps = sorted(c.removeprefix("CAP_").lower() for c in rules.capabilities)
    if caps:
        out["capability"] = {"allowedCapabilities": caps}
    return out


@register
class AppArmorProfileExporter(Exporter):
    name = "k8s-apparmorprofile"
    description = "Security Profiles Operator AppArmorProfile object (YAML)"
    suffix = ".yaml"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        profile, dropped = expressible_files(profile)   # names the program chose that this format cannot hold
        notes += dropped
        name = k8s_name(profile, options.name)
        meta: dict[str, Any] = {"name": name}
        if options.namespace:
            meta["namespace"] = options.namespace
        spec = {"abstract": abstract(profile), "mode": "Complain" if options.complain else "Enforce"}
        obj = {"apiVersion": API_VERSION, "kind": "AppArmorProfile", "metadata": meta, "spec": spec}
        notes.append(f"pods reference it as appArmorProfile: {{type: Localhost, localhostProfile: {name}}}")
        return ExportResult(dump_yaml(obj), tuple(notes))
