"""AppArmor-style path globs (``*`` one component, ``**`` any depth, ``\\`` escapes): the matcher every
pattern rule is read with (learner/patterns.py makes the patterns; Landlock and AppArmor grant them)."""
from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=65536)   # pure; paths share components and shapes
def _regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def matches(pattern: str, path: str) -> bool:
    """Does ``path`` match the AppArmor-style glob ``pattern`` (``*`` one component, ``**`` any depth)?"""
    return bool(_regex(pattern).match(path))


def literal_prefix(pattern: str) -> str:
    """What every path ``pattern`` matches starts with: its characters up to the first glob, unescaped
    (read as :func:`_regex` reads them)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            break
        out.append(c)
        i += 1
    return "".join(out)
