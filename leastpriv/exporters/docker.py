"""Docker / Podman seccomp profile: ``docker run --security-opt seccomp=FILE``.

Same object as OCI's ``linux.seccomp`` (defaultAction SCMP_ACT_ERRNO with
defaultErrnoRet 1 = EPERM, the compat ABIs in ``architectures`` as Docker's
archMap lists them, clone3 -> SCMP_ACT_ERRNO errnoRet 38 = ENOSYS), with a
``comment`` on argument rules saying what they keep out. Capabilities are not
part of this file: the notes print the matching ``--cap-drop ALL --cap-add``
flags.
"""
from __future__ import annotations

from typing import Any

from .base import ExportOptions, ExportResult, Exporter, dump_json, model_notes, prepare, register
from .oci import seccomp_object


def docker_flags(profile: Any) -> str:
    caps = sorted(profile.rules.capabilities)
    flags = ["--cap-drop ALL"] + [f"--cap-add {c.removeprefix('CAP_')}" for c in caps]
    if profile.rules.no_new_privileges:
        flags.append("--security-opt no-new-privileges")
    return " ".join(flags)


@register
class DockerExporter(Exporter):
    name = "docker"
    description = "Docker/Podman seccomp JSON (docker run --security-opt seccomp=FILE)"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        obj, model = seccomp_object(profile, options, comments=True)
        notes += model_notes(model, self.name)
        notes.append(f"run with: docker run --security-opt seccomp=FILE {docker_flags(profile)} ...")
        return ExportResult(dump_json(obj), tuple(notes))
