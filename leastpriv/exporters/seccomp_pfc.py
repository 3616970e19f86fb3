"""libseccomp's pseudo filter code of the filter ``leastpriv run`` loads: for review.

The same per-ABI filter policy/libseccomp.py builds (seccomp_export_pfc), so a
reviewer can read exactly what the kernel will be given, rule by rule and
ABI by ABI. Built for this host's architecture.
"""
from __future__ import annotations

from typing import Any

from ..kernel import syscalls
from ..errors import UserError
from ..policy import seccomp_model as sm
from .base import ExportOptions, ExportResult, Exporter, model_notes, prepare, register
from ..policy.libseccomp import build_filter, describe_skipped


@register
class SeccompPFCExporter(Exporter):
    name = "seccomp-pfc"
    description = "libseccomp pseudo filter code of the filter `leastpriv run` loads (for review)"
    suffix = ".pfc"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:

        profile, options, notes = prepare(profile, options)
        if options.arch != syscalls.host_arch():
            raise UserError(f"--arch {options.arch}: seccomp-pfc is built by this host's libseccomp "
                            f"({syscalls.host_arch()}) only")
        model = sm.build(profile, complain=options.complain, arch=options.arch,
                         runtime=options.runtime if options.runtime != "none" else "leastpriv")
        flt = build_filter(model, complain_mode=False)
        notes += model_notes(model, self.name) + describe_skipped(flt.skipped)
        return ExportResult(flt.pfc(), tuple(notes))
