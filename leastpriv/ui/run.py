"""``leastpriv run``'s denials, one line each: kind, what (syscall or path and rights), executable."""
from __future__ import annotations

from typing import Iterable

from ..text import plural


def _calls(n: int) -> str:
    return plural(n, "call")


def denial_line(d, complain: bool) -> str:
    verb = "would deny" if complain else "denied"
    if d.kind == "capability":
        return f"{verb}: capability {d.capability} by {d.exe} ({_calls(d.count).replace('call', 'check')})"
    if d.kind == "landlock":
        where = f"TCP port {d.path[4:]}" if d.path.startswith("tcp:") else d.path
        return f"{verb}: landlock {'+'.join(d.access)} {where} by {d.exe} ({d.syscall}, {_calls(d.count)})"
    args = f" [{'; '.join(d.args)}]" if d.args else ""
    return f"{verb}: seccomp {d.syscall}{args} ({d.arch}) by {d.exe} ({_calls(d.count)})"


def denial_lines(denials: Iterable, complain: bool) -> list[str]:
    return [denial_line(d, complain) for d in denials]
