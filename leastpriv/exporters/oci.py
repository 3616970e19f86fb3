"""OCI runtime-spec: ``linux.seccomp``, ``process.capabilities``, ``process.noNewPrivileges``.

Without ``--bundle`` the output is the config.json fragment holding those
three (merge it into a bundle's config.json). With ``--bundle DIR`` the
bundle's config.json is updated in place (app.py writes it, atomically), keeping
every other key, their order and the file's indentation.

The OCI format has one syscall list for all ABIs in ``architectures``: the
per-ABI rules of the profile are united (see seccomp_model.Model.flat).
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..errors import UserError
from ..fileio import read_json
from ..policy import seccomp_model as sm
from .base import ExportOptions, ExportResult, Exporter, dump_json, model_notes, prepare, register


def seccomp_object(profile: Any, options: ExportOptions, *, comments: bool = False) -> tuple[dict, sm.Model]:
    """The seccomp object shared by OCI, Docker and the SPO SeccompProfile spec (written by policy/)."""
    model = sm.build(profile, complain=options.complain, arch=options.arch, runtime=options.runtime)
    return sm.to_oci(model, comments=comments), model


def capabilities_object(profile: Any) -> dict:
    caps = sorted(profile.rules.capabilities)
    return {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []}


def _indent_of(text: str) -> str | int:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and line != stripped:
            ws = line[: len(line) - len(stripped)]
            return "\t" if ws.startswith("\t") else len(ws)
    return "\t"


@register
class OCIExporter(Exporter):
    name = "oci"
    description = "OCI runtime config: linux.seccomp, process.capabilities, process.noNewPrivileges (--bundle DIR updates config.json)"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        seccomp, model = seccomp_object(profile, options)
        notes += model_notes(model)
        process = {"capabilities": capabilities_object(profile),
                   "noNewPrivileges": profile.rules.no_new_privileges}
        if not options.bundle:
            fragment = {"process": process, "linux": {"seccomp": seccomp}}
            return ExportResult(dump_json(fragment), tuple(notes))
        path = os.path.join(options.bundle, "config.json")
        config = read_json(path, "OCI bundle config")
        if not isinstance(config, dict):
            raise UserError(f"{path}: not an OCI config (expected a JSON object)")
        with open(path) as fh:
            indent = _indent_of(fh.read())
        proc = config.setdefault("process", {})
        if not isinstance(proc, dict):
            raise UserError(f"{path}: \"process\" is not an object")
        proc.update(process)
        linux = config.setdefault("linux", {})
        if not isinstance(linux, dict):
            raise UserError(f"{path}: \"linux\" is not an object")
        linux["seccomp"] = seccomp
        text = json.dumps(config, indent=indent) + "\n"
        notes.append(f"updated {path}: process.capabilities, process.noNewPrivileges, linux.seccomp")
        return ExportResult(text, tuple(notes), target=path)
