"""Security Profiles Operator ``SeccompProfile`` (security-profiles-operator.x-k8s.io/v1).

The spec is the same seccomp object as the OCI/Docker export (one source:
seccomp_model); SPO installs it on every node as
``/var/lib/kubelet/seccomp/operator/<namespace>/<name>.json``, which a pod
references with ``seccompProfile: {type: Localhost, localhostProfile:
operator/<namespace>/<name>.json}`` (``--format k8s-pod --namespace NS``
writes that).
"""
from __future__ import annotations

from typing import Any

import yaml

from ..policy.pod_security import DEFAULT_NAMESPACE, k8s_name
from .base import ExportOptions, ExportResult, Exporter, model_notes, prepare, register
from .oci import seccomp_object

API_VERSION = "security-profiles-operator.x-k8s.io/v1"
# the namespace of the object, and so of the path SPO installs it at (operator/<ns>/<name>.json), when
# --namespace is not given; k8s-pod references the same path by default


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)


@register
class SeccompProfileExporter(Exporter):
    name = "k8s-seccompprofile"
    description = "Security Profiles Operator SeccompProfile object (YAML)"
    suffix = ".yaml"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        seccomp, model = seccomp_object(profile, options)
        notes += model_notes(model, self.name)
        name = k8s_name(profile, options.name)
        meta: dict[str, Any] = {"name": name, "namespace": options.namespace or DEFAULT_NAMESPACE}
        meta["annotations"] = {"leastpriv.io/runs": str(len(profile.runs)),
                               "leastpriv.io/args-mode": profile.rules.args_mode}
        obj = {"apiVersion": API_VERSION, "kind": "SeccompProfile", "metadata": meta, "spec": seccomp}
        ns = meta["namespace"]
        notes.append(f"pods reference it as seccompProfile: {{type: Localhost, localhostProfile: "
                     f"operator/{ns}/{name}.json}}")
        return ExportResult(dump_yaml(obj), tuple(notes))
