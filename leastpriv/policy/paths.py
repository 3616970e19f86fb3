"""What a path of a profile is, from the facts recorded when it was learned (tracer/pathfacts.py).

Rules that depend on it (a directory gets other Landlock/AppArmor rights than a file; an executable's
interpreter must be executable; AppArmor attaches to the program's real path) read it here, never from the
machine that exports or enforces, so a profile exports the same bytes anywhere.
"""
from __future__ import annotations

import os
import stat
from typing import Any, Mapping


_MODES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "char": stat.S_IFCHR, "block": stat.S_IFBLK,
          "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "other": stat.S_IFREG}


class PathFacts:
    """Answers about paths from a profile's recorded facts (``facts["paths"]``), never from this machine.

    A path the run did not record is not known: not a directory, missing, its own real path, no interpreter.
    """

    def __init__(self, table: Mapping[str, Mapping] | None):
        self.table = table if isinstance(table, Mapping) else {}

    def kind(self, p: str) -> str:
        e = self.table.get(p)
        return e.get("kind", "missing") if isinstance(e, Mapping) else "missing"

    def is_dir(self, p: str) -> bool:
        return self.kind(p) == "dir"

    def exists(self, p: str) -> bool:
        return self.kind(p) != "missing"

    def realpath(self, p: str) -> str:
        e = self.table.get(p)
        r = e.get("realpath") if isinstance(e, Mapping) else None
        return r if isinstance(r, str) and r else os.path.normpath(p)

    def mode(self, p: str) -> int:
        """``st_mode``'s file type bits as lstat would have said when learned; 0 when missing."""
        e = self.table.get(p)
        if not isinstance(e, Mapping):
            return 0
        if e.get("link") == "yes":
            return stat.S_IFLNK
        return _MODES.get(e.get("kind", "missing"), 0)

    def interpreter(self, p: str) -> str | None:
        e = self.table.get(p)
        r = e.get("interpreter") if isinstance(e, Mapping) else None
        return r if isinstance(r, str) and r else None


def of(profile: Any) -> PathFacts:
    """The path facts of a profile (empty for a profile learned before they were recorded)."""
    return PathFacts(getattr(profile, "facts", {}).get("paths"))
