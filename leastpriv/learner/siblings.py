"""Harmless siblings: the same operation in another variant, allowed next to the one the runs used.

The next input may make the same program call ``fdatasync`` instead of
``fsync``, ``ppoll`` instead of ``poll``, ``vfork`` instead of ``clone``: a
profile that allows only the exact variants traced breaks on it. The families
are data (``leastpriv/data/siblings.json``), each a subset of a systemd syscall
group or saying why not. ``siblings(arch, used)`` is pure.

Never added this way: names on the review's dangerous list (policy/risks.py),
names whose arguments the learner constrains (clone, socket, ioctl, prctl,
mmap/mprotect, kill, ...: an unconstrained sibling would bypass the argument
rule; ``clone`` without namespace flags is added as an argument rule by
rules.py instead), and names the ABI does not have.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from ..values import Value, value
from ..kernel.data import get_data
from ..kernel import syscalls
from ..policy.risks import SYSCALLS as DANGEROUS
from ..policy.rules import Sibling


@value
class Family(Value):
    name: str
    members: tuple[str, ...]
    triggers: tuple[str, ...]
    group: str | None
    why: str
    deviation: str


@lru_cache(maxsize=None)
def families() -> tuple[Family, ...]:
    data = json.loads(get_data("leastpriv.policy", "siblings.json"))
    return tuple(Family(f["name"], tuple(f["members"]), tuple(f.get("triggers") or f["members"]), f.get("group"),
                        f["why"], f.get("deviation", "")) for f in data["families"])


def addable(arch: str, name: str) -> bool:
    """May ``name`` be added as a sibling on ``arch``?"""
    if name in DANGEROUS or not syscalls.exists(arch, name):
        return False
    return syscalls.tracked_args(arch, name) is None or name == "setsockopt"


def siblings(arch: str, used: Iterable[str]) -> list[Sibling]:
    """The siblings of the syscalls ``used`` on ``arch`` (not already used), each once, sorted."""
    used = set(used)
    out: dict[str, Sibling] = {}
    for fam in families():
        trig = sorted(t for t in fam.triggers if t in used)
        if not trig:
            continue
        for m in fam.members:
            if m in used or m in out or not addable(arch, m):
                continue
            out[m] = Sibling(m, trig[0], fam.name, fam.why)
    return [out[k] for k in sorted(out)]
