"""Kubernetes: a container securityContext from the profile, as a Pod or patched into a manifest.

The securityContext:

* ``seccompProfile``: Localhost, ``operator/<namespace>/<name>.json`` under
  the kubelet's seccomp root (/var/lib/kubelet/seccomp), where the Security
  Profiles Operator installs the ``--format k8s-seccompprofile`` object of the
  same name and namespace. The namespace is the manifest document's own, else
  ``--namespace``, else ``default`` -- the same default the SeccompProfile
  export writes, so the two agree without flags. (Without the operator: copy
  ``--format docker`` output to that path on each node.)
* ``capabilities``: drop ALL, add exactly the learned set;
* ``allowPrivilegeEscalation: false`` unless the workload needs to gain
  privileges (setuid/setgid/setpcap use);
* ``runAsNonRoot: true`` when no learning run ran as uid 0 (a run as root
  cannot tell whether uid 0 was needed: then it is left out and said so);
* ``appArmorProfile`` (Kubernetes 1.30+): Localhost, the apparmor export's name.

Without ``--manifest`` the output is a Pod with one container; with
``--manifest FILE`` the named container (``--container``; the only one if
there is one) of every Pod / Deployment / StatefulSet / DaemonSet /
ReplicaSet / Job / CronJob document is patched, and the whole file comes back
with everything else as it was (comments, order, other documents), through
ruamel.yaml's round-trip mode. Keys of the container's securityContext that
leastpriv does not set are kept.

The notes say which Pod Security Standard level the result meets
(policy/pod_security.py, the same check ``leastpriv review`` makes).
"""
from __future__ import annotations

import io
import re
from typing import Any

from ..errors import UserError
from ..policy import pod_security
from ..policy.pod_security import DEFAULT_NAMESPACE, k8s_name, pss_level, seccomp_localhost
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from .k8s_seccompprofile import dump_yaml

POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def security_context(profile: Any, options: ExportOptions | None = None) -> dict:
    """The container securityContext for ``profile`` (policy/pod_security.py) with the names of ``options``."""
    options = options or ExportOptions()
    return pod_security.security_context(profile, name=options.name, namespace=options.namespace,
                                         apparmor_name=options.extra.get("apparmor_name", ""))


def _pod_checks(pod_spec: Any) -> list[str]:
    """Pod-level settings outside the securityContext that break the baseline level."""
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            out.append(f"{key}: true")
    for v in pod_spec.get("volumes") or []:
        if "hostPath" in v:
            out.append(f"hostPath volume {v.get('name')}")
    return out


def _level_notes(sc: dict, profile: Any, pod_spec: Any = None) -> list[str]:
    verdict = pss_level(sc)
    level = verdict["level"]
    pod_issues = _pod_checks(pod_spec) if pod_spec is not None else []
    if pod_issues:
        level = "privileged"
    notes = [f"Pod Security Standard: this securityContext meets '{level}'"]
    for why in verdict["baseline_violations"] + pod_issues:
        notes.append(f"  not baseline: {why}")
    if level != "restricted":
        for why in verdict["restricted_violations"]:
            notes.append(f"  not restricted: {why}")
    if "runAsNonRoot" not in sc and profile.runs:
        notes.append("runAsNonRoot not set: the learning runs ran as root, so they cannot show that uid 0 is not "
                     "needed; learn as a non-root user, or set runAsNonRoot/runAsUser yourself")
    if "allowPrivilegeEscalation" not in sc:
        notes.append("allowPrivilegeEscalation left at its default (true): the workload changes ids or "
                     "capabilities (no_new_privileges is false in the profile)")
    return notes


def _round_trip():
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    return y


def _indented_sequences(text: str) -> bool:
    lines = text.splitlines()
    for a, b in zip(lines, lines[1:]):
        m = re.match(r"^(\s*)[^\s#-][^:]*:\s*$", a)
        if m and b.strip().startswith("- "):
            return len(b) - len(b.lstrip()) > len(m.group(1))
    return False


def patch_manifest(text: str, container: str, sc: dict, source: str, name: str = "",
                   namespace: str = "") -> tuple[str, list[tuple[str, Any]]]:
    """``text`` with ``container``'s securityContext patched in every workload document
    (its seccompProfile in the document's namespace, else ``namespace``, when ``name`` is given).

    Returns the new text and [(document description, pod spec)] of what was patched.
    """
    y = _round_trip()
    if _indented_sequences(text):
        y.indent(mapping=2, sequence=4, offset=2)
    else:
        y.indent(mapping=2, sequence=2, offset=0)
    y.explicit_start = text.lstrip().startswith("---")
    try:
        docs = list(y.load_all(text))
    except Exception as exc:  # ruamel raises several error types
        raise UserError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    patched: list[tuple[str, Any]] = []
    seen: list[str] = []
    specs = []
    for doc in docs:
        if not hasattr(doc, "get"):
            continue
        kind = doc.get("kind")
        path = POD_SPEC_PATHS.get(kind)
        if path is None:
            continue
        spec = doc
        for key in path:
            spec = spec.get(key) if hasattr(spec, "get") else None
            if spec is None:
                break
        if spec is None:
            continue
        specs.append((doc, kind, spec))
        seen += [c.get("name") for c in spec.get("containers") or []]
    if not container and len(seen) > 1:
        raise UserError(f"--container: {source} has several containers ({', '.join(map(str, seen))}): "
                        f"name the one to patch")
    target = container or (seen[0] if seen else None)
    for doc, kind, spec in specs:
        for c in spec.get("containers") or []:
            if c.get("name") == target:
                meta = doc.get("metadata") or {}
                this = sc
                if name and "seccompProfile" in sc:
                    this = {**sc, "seccompProfile": {**sc["seccompProfile"], "localhostProfile":
                                                     seccomp_localhost(name, meta.get("namespace") or namespace)}}
                current = c.get("securityContext")
                if current is None:
                    c["securityContext"] = this
                else:
                    for k, v in this.items():
                        current[k] = v
                patched.append((f"{kind}/{meta.get('name', '?')} container {target}", spec))
    if not patched:
        raise UserError(f"{source}: no container named {container!r} in a Pod/Deployment/StatefulSet/DaemonSet/"
                        f"Job/CronJob (containers: {', '.join(map(str, seen)) or 'none'})")
    out = io.StringIO()
    y.dump_all(docs, out)
    return out.getvalue(), patched


@register
class PodExporter(Exporter):
    name = "k8s-pod"
    description = "Kubernetes securityContext for a container: a Pod, or patched into --manifest FILE"
    suffix = ".yaml"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        sc = security_context(profile, options)
        name = k8s_name(profile, options.name)
        if options.manifest:
            try:
                with open(options.manifest) as fh:
                    text = fh.read()
            except OSError as exc:
                raise UserError(f"{options.manifest}: cannot read: {exc.strerror}") from None
            new, patched = patch_manifest(text, options.container, sc, options.manifest, name, options.namespace)
            for what, spec in patched:
                notes.append(f"patched {what}")
                notes += _level_notes(sc, profile, spec)
            return ExportResult(new, tuple(notes))
        container = options.container or name
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [{"name": container, "securityContext": sc}]}}
        pod["metadata"]["namespace"] = options.namespace or DEFAULT_NAMESPACE
        notes += _level_notes(sc, profile, pod["spec"])
        notes.append("add the container's image (and the rest of its spec), or patch your own manifest with "
                     "--manifest FILE --container NAME")
        return ExportResult(dump_yaml(pod), tuple(notes))
