"""Registers the OCI runtimes' base syscalls (policy/runtime_base.py) with the seccomp model.

``runc`` / ``crun``: the runtime base with noNewPrivileges (what exported
profiles use); ``runc:new-privileges`` / ``crun:new-privileges``: without it
(the runtime installs the filter earlier, before dropping capabilities and
changing user, so it needs more). ``runc+crun`` / ``runc+crun:new-privileges``:
both runtimes' bases (Docker runs runc, Podman crun by default).
"""
from __future__ import annotations

from .runtime_base import runtime_base
from . import seccomp_model


def _fn(runtime: str, nnp: bool):
    return lambda arch: runtime_base(runtime, None, nnp, arch).syscalls


def _both(nnp: bool):
    return lambda arch: sorted(set(runtime_base("runc", None, nnp, arch).syscalls) |
                               set(runtime_base("crun", None, nnp, arch).syscalls))


for _rt in ("runc", "crun"):
    seccomp_model.register_runtime(_rt, _fn(_rt, True))
    seccomp_model.register_runtime(f"{_rt}:new-privileges", _fn(_rt, False))
seccomp_model.register_runtime("runc+crun", _both(True))
seccomp_model.register_runtime("runc+crun:new-privileges", _both(False))
