"""Profile: the aggregate of runs, versioned JSON, the one file users commit.

The JSON is plain, sorted and stable so that ``git diff`` of two versions
reads well. A newer format version than this code knows is refused with a
clear message, never half-read.

Layout (format "leastpriv-profile", version 1)::

    runs[]        id, command, time, backend, arch, uid, exit status, complete,
                  and ``added``: the facts this run was first to show
    convergence   runs, runs_without_growth (trailing runs that added nothing)
    facts         syscalls / args / capabilities / files / execs / network /
                  executables / unknown_syscalls, each with counts and the
                  number of runs it appeared in
    rules         what the learner derived from the facts (learner/rules.py):
                  a policy.rules.Rules, whose JSON form policy/rules.py reads
                  and writes
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from ..values import Value, field, value
from .. import __version__, schema
from ..errors import UserError
from ..fileio import copy_json, dumps, keep_json, make_temp, read_json, write_atomic
from ..policy.rules import EMPTY, Rules
from ..tracer.recording import Recording, is_recording_json

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any

PROFILE_FORMAT = "leastpriv-profile"
PROFILE_VERSION = 1

FACT_KINDS = ("syscalls", "args", "capabilities", "files", "execs", "network", "executables", "unknown_syscalls")


def empty_facts() -> dict:
    return {k: ({} if k != "network" else []) for k in FACT_KINDS}


@value
class Profile(Value):
    """The aggregate of runs. ``runs`` and ``facts`` are JSON-shaped (treat them as read-only); ``rules`` is typed.

    Build or change one only through learner.aggregate (pure functions that
    return a new Profile).
    """

    runs: tuple[Mapping[str, Any], ...] = ()
    facts: Mapping[str, Any] = field(default_factory=empty_facts)
    rules: Rules = EMPTY

    # ---- derived -----------------------------------------------------------
    @property
    def runs_without_growth(self) -> int:
        n = 0
        for run in reversed(self.runs):
            if any(run.get("added", {}).get(k) for k in FACT_KINDS):
                break
            n += 1
        return n

    @property
    def host_arches(self) -> list[str]:
        return sorted({r.get("host_arch", "") for r in self.runs} - {""})

    def syscall_names(self, arch: str) -> set[str]:
        return set(self.facts.get("syscalls", {}).get(arch, {}))

    def seen_in_one_run(self) -> list[str]:
        """Facts that appeared in exactly one run of three or more, for a human to look at (an
        input-specific path, or something that should not be there). show, review and merge list them."""
        if len(self.runs) < 3:
            return []
        f = self.facts
        out = [f"{n} ({a})" for a, t in sorted(f.get("syscalls", {}).items()) for n, st in sorted(t.items())
               if st.get("runs", 0) == 1]
        out += [f"{sc}({e.get('describe', e['values'])})" for a, t in sorted(f.get("args", {}).items())
                for sc, es in sorted(t.items()) for e in es if e.get("runs", 0) == 1]
        out += [c for c, e in sorted(f.get("capabilities", {}).items()) if e.get("runs", 0) == 1]
        out += [e["op"] + " " + e["address"] + ("" if e.get("port") is None else f":{e['port']}")
                for e in f.get("network", []) if e.get("runs", 0) == 1]
        return out

    # ---- JSON --------------------------------------------------------------
    def to_json(self) -> dict:
        """The profile as JSON data, its facts and rules copied (the caller may change them)."""
        return self._json(copy_json)

    def _json(self, copy) -> dict:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "generated_by": f"leastpriv {__version__}",
            "convergence": {
                "runs": len(self.runs),
                "runs_without_growth": self.runs_without_growth,
                "note": "a trace proves what ran, not what never will: more runs with other inputs "
                        "make the profile safer to enforce",
            },
            "runs": [dict(r) for r in self.runs],
            "facts": copy(dict(self.facts)),
            "rules": copy(self.rules.to_json()),
        }

    @classmethod
    def from_json(cls, d: Any, source: str = "profile") -> "Profile":
        if not isinstance(d, Mapping) or d.get("format") != PROFILE_FORMAT:
            raise UserError(f"{source}: not a leastpriv profile (no \"format\": \"{PROFILE_FORMAT}\")")
        version = d.get("version")
        if not isinstance(version, int):
            raise UserError(f"{source}: profile has no integer \"version\"")
        if version > PROFILE_VERSION:
            raise UserError(f"{source}: profile format version {version} is newer than this leastpriv understands "
                            f"({PROFILE_VERSION}); upgrade leastpriv to read it")
        schema.check_shipped(d, "profile", source, "profile")   # leastpriv/schemas/profile.schema.json
        schema.check_names(d, source, "profile")
        runs, facts, rules = d.get("runs"), d.get("facts"), d.get("rules", {})
        full = empty_facts()
        full.update(facts)
        try:
            typed = Rules.from_json(rules)
        except (ValueError, TypeError, KeyError) as exc:   # what the schema leaves open and the types need
            raise UserError(f"{source}: rules: {exc}") from None
        return cls(runs=tuple(runs), facts=full, rules=typed)

    def save(self, path: str) -> None:
        # dumps only reads: no copy of the facts (~10 ms for a profile of 9,000 files)
        write_atomic(path, dumps(self._json(keep_json)))

    @classmethod
    def load(cls, path: str) -> "Profile":
        return cls.from_json(read_json(path, "profile"), str(path))

    @classmethod
    def load_existing(cls, path: str, reuse: "Profile | None" = None) -> "Profile | None":
        """The profile at ``path`` that a new run will be added to, None if there is none yet.

        Checked before anything is traced: a directory that cannot hold the
        profile is an error now, not after the run.

        ``reuse``: what an earlier call returned for ``path`` (learn reads the profile before the run to
        fail early, and again under the profile's lock before adding the run: another learn may have
        written it meanwhile). It is returned as it is, without the second read and schema check (~40 ms
        for a profile of 1,000 files), when the file is still the one it was read from: same device,
        inode, size, modification and change times, taken *before* that read (a change during or after
        it shows as a difference; leastpriv's own writes rename a new file over it: a new inode).
        """
        if os.path.lexists(path):
            if os.path.islink(path):   # write_atomic would refuse it after the run: refuse it now
                raise UserError(f"{path}: is a symlink: leastpriv never writes through one (name the file it "
                                "points to)")
            if not os.path.isfile(path):   # /dev/null, a fifo: the atomic rename would replace it
                raise UserError(f"{path}: not a regular file: the profile is written by renaming a new file "
                                "over it")
            return cls._load_unless_read(path, reuse)
        parent = os.path.dirname(os.path.abspath(path))
        try:
            mode = os.stat(parent).st_mode
        except OSError as exc:
            raise UserError(f"{path}: cannot write the profile: {parent}: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise UserError(f"{path}: cannot write the profile: {parent} is not a directory")
        try:   # the profile is written by a rename from a temporary file there: try that now
            fd, probe = make_temp(parent, ".leastpriv-probe.")
        except OSError as exc:
            raise UserError(f"{path}: cannot write the profile in {parent}: {exc.strerror}") from None
        os.close(fd)
        os.unlink(probe)
        return None

    @classmethod
    def _load_unless_read(cls, path: str, reuse: "Profile | None") -> "Profile":
        """load(path), or ``reuse`` when it was read from the file that is still there (see load_existing;
        a Profile never changes, so handing it out twice is safe)."""
        st = os.stat(path)
        key, ident = os.path.abspath(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        got = _READ.get(key)
        if reuse is not None and got is not None and got[0] == ident and got[1] is reuse:
            return reuse
        profile = cls.load(path)
        _READ[key] = (ident, profile)
        return profile


# the last profile load_existing read from each path: absolute path -> (file identity before the read, Profile)
_READ: dict[str, tuple[tuple, Profile]] = {}


def load_profile_or_recording(path: str):
    """Read a file that holds either a Profile or a Recording (merge, check, diff), or a seccomp log
    (audit type 1326 records: a Recording of kind log, tracer/kernlog.py)."""
    from ..tracer import kernlog

    if kernlog.looks_like_log(path):
        return kernlog.load(path)[0]

    d = read_json(path, "profile or recording")
    if is_recording_json(d):
        return Recording.from_json(d, str(path))
    return Profile.from_json(d, str(path))
