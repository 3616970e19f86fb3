"""Finding the program a Command will run, before anything runs (shared by the tracers, the enforcer and the CLI)."""
from __future__ import annotations

import os
import stat

from .errors import UserError


def resolve_command(argv0: str) -> str:
    """The file execve will run, looked up in PATH like execvp.

    Raises UserError with exit code 127 (not found) or 126 (found but not
    executable), as a shell would.
    """
    if not argv0:
        raise UserError("command: empty program name", exit_code=127)
    if "/" in argv0:
        candidates = [argv0]
    else:
        path = os.environ.get("PATH", os.defpath)
        candidates = [os.path.join(d or ".", argv0) for d in path.split(os.pathsep)]
    found_noexec = None
    for c in candidates:
        try:
            st = os.stat(c)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(c, os.X_OK):
            return c
        found_noexec = found_noexec or c
    if found_noexec:
        what = "is a directory" if os.path.isdir(found_noexec) else "permission denied (not executable)"
        raise UserError(f"{argv0}: {what}", exit_code=126)
    raise UserError(f"{argv0}: command not found", exit_code=127)
