"""Path patterns: the file facts generalized so the next run, with other temporary names, still fits.

A pure function of the facts. Two generalizations, each kept with the
literal paths and the number of runs that support it:

* **Variable components.** A path component that is a mktemp/tempfile
  suffix (``tmp.B9LPq8``, ``app.dDMBf8``, ``tmpk3j_x9a2``), a pid or other
  number, a UUID, a hex hash, or a timestamp becomes a glob in that place
  (``/tmp/tmp.*``, ``objects/*/*``); a component that differs between paths
  of the same shape only by its digits (``out.log.1``, ``out.log.2``;
  ``worker-3.pid``) does too. AppArmor-style globs: ``*`` is one component
  (no ``/``), ``**`` any depth.
* **Owned directories.** A directory the workload created (a ``create``
  fact with paths beneath it) is *owned*: the workload may create, write,
  read and remove anything beneath it (``PATTERN/**``). The paths beneath it
  are covered by that one rule.

Never generalized: anything under ``/etc``, ``/root``, ``/home``, ``/dev``,
``/proc``, ``/sys`` (secrets, other users, devices, other processes), where
the literal paths stay as they were.

``file_rules(facts)`` returns ``(files, patterns, owned)`` (policy.rules types): the literal
paths the patterns do not cover, by access; the patterns; the owned
directories. ``matches(pattern, path)`` and ``covered(rules, path, access)``
answer whether a path is already allowed (check, diff).
"""
from __future__ import annotations

import functools
import os
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping

from ..policy.globs import literal_prefix, matches  # noqa: F401 - the one matcher; learner code calls patterns.matches
from ..policy.rules import ACCESSES, FileRules, PathPattern, Rules

# never generalize, never own beneath these: secrets, other users, devices, other processes, the kernel
NEVER = ("/etc", "/root", "/home", "/dev", "/proc", "/sys", "/boot")
# packaged code and data: no generated names there, their paths stay literal
PACKAGED = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/snap", "/nix/store")
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/user")
EXAMPLES = 5


class _Regex:
    """A regular expression compiled at its first use, then as fast as the compiled one (its methods become
    this object's attributes). A learn whose paths are all packaged or secret (find, tar of /usr) never
    uses those below: compiling them at import cost ~0.6 ms of its start."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __getattr__(self, name: str):
        compiled = re.compile(self.pattern)
        for method in ("match", "fullmatch", "search", "sub", "split"):
            setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)


_UUID = _Regex(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = _Regex(r"^[0-9a-f]{16,}$")
_HEX2 = _Regex(r"^[0-9a-f]{2}$")
_NUM = _Regex(r"^\d+$")
_STAMP = _Regex(r"\d{8,}")                        # 20261130, 1764470000 (epoch), 20261130T101010
# mktemp's tmp.XXXXXXXXXX / NAME.XXXXXX / NAME-XXXXXX and Python's tempfile tmpXXXXXXXX
_MKTEMP = _Regex(r"^(?P<pre>.*[._-]|tmp)(?P<rand>[A-Za-z0-9_]{6,})$")
_TEMPNAME = _Regex(r"^[a-z0-9_]{8}$")             # Python's tempfile probe names (_get_default_tempdir)
_DIGITS = _Regex(r"\d+")
_PIDISH = _Regex(r"(?<=[._-])\d{3,}(?=\.[A-Za-z]+$)")   # nginx.1234.pid, worker-20417.sock in run/temp dirs
RUN_DIRS = TEMP_DIRS + ("/run", "/var/run")


_RUN_UNDER = tuple(d + "/" for d in RUN_DIRS)
_KEPT = frozenset(NEVER + PACKAGED)
_KEPT_UNDER = tuple(d + "/" for d in NEVER + PACKAGED)
_TEMP = frozenset(TEMP_DIRS)
_TEMP_UNDER = tuple(d + "/" for d in TEMP_DIRS)


def never_generalized(path: str) -> bool:
    return (path in _KEPT or path.startswith(_KEPT_UNDER)) and not path.startswith(_TEMP_UNDER)


def in_temp_dir(path: str) -> bool:
    return path in _TEMP or path.startswith(_TEMP_UNDER)


def _random_looking(s: str) -> bool:
    """mktemp's random letters: mixed classes (a digit or capital among letters), not a word."""
    has_digit = any(c.isdigit() for c in s)
    has_upper = any(c.isupper() for c in s)
    has_lower = any(c.islower() for c in s)
    return (has_digit and (has_lower or has_upper)) or (has_upper and has_lower) or "_" in s.strip("_")


@functools.lru_cache(maxsize=65536)   # pure; paths share components and shapes
def component_glob(c: str, before_hash: bool = False) -> str | None:
    """The glob for one path component when it looks generated (None: keep it literal). ``before_hash``: the
    next component is a hex hash (git's objects/ab/cdef...: ``c`` is then the fan-out directory)."""
    if _NUM.match(c) or _UUID.fullmatch(c) or _HEX.match(c):
        return "*"
    if before_hash and _HEX2.match(c):
        return "*"                                     # git's objects/ab/cdef...: the fan-out directory
    m = _MKTEMP.match(c)
    if m and _random_looking(m.group("rand")):
        return _glob_escape(m.group("pre")) + "*"
    u = _UUID.search(c)
    if u:
        return _glob_escape(c[:u.start()]) + "*" + _glob_escape(c[u.end():])
    s = _STAMP.search(c)
    if s:
        return _glob_escape(c[:s.start()]) + "*" + _glob_escape(c[s.end():])
    return None


_GLOB_CHARS = _Regex(r"([\[\]?*{}\\])")


def _glob_escape(s: str) -> str:
    # most paths have nothing to escape: a search is cheaper than a substitution's template
    return _GLOB_CHARS.sub(r"\\\1", s) if _GLOB_CHARS.search(s) else s


@functools.lru_cache(maxsize=65536)   # pure; paths share components and shapes
def shape(path: str) -> str:
    """The path with its generated components globbed (itself, escaped, when it has none)."""
    if never_generalized(path):
        return _glob_escape(path)
    run_dir = path.startswith(_RUN_UNDER)
    head, sep, last = path.rpartition("/")
    if not sep or head.count("/") > _DEEP:
        return _walk_shape(path, run_dir)
    # the directory's shape is shared by every path in it: made once (_dir_shape), then the last component
    return _dir_shape(head, run_dir, _fan_out(head, last)) + "/" + _component_shape(last, False, run_dir, True)


_DEEP = 128   # directories deeper than this take the plain walk (_dir_shape recurses once per level)


def _walk_shape(path: str, run_dir: bool) -> str:
    """shape, one component after the other."""
    parts = path.split("/")
    last = len(parts) - 1
    # a component's glob depends on the next one only when it is two characters (a fan-out directory)
    return "/".join([_component_shape(c, i < last and len(c) == 2 and _HEX.match(parts[i + 1]) is not None,
                                      run_dir, i == last) for i, c in enumerate(parts)])


def _fan_out(d: str, nxt: str) -> bool:
    """Is the last component of directory ``d`` a two-character fan-out directory before the hash ``nxt``?"""
    return len(d) - d.rfind("/") == 3 and _HEX.match(nxt) is not None


@functools.lru_cache(maxsize=65536)
def _dir_shape(d: str, run_dir: bool, fan_out: bool) -> str:
    """The components of directory ``d`` as shape writes them in a path beneath it (``fan_out``: its last
    component is followed by a hex hash)."""
    head, sep, c = d.rpartition("/")
    own = _component_shape(c, fan_out, run_dir, False)
    return _dir_shape(head, run_dir, _fan_out(head, c)) + "/" + own if sep else own


@functools.lru_cache(maxsize=65536)   # the same directories recur in every path beneath them
def _component_shape(c: str, before_hash: bool, run_dir: bool, last: bool) -> str:
    """One component of ``shape``: its glob, or itself escaped."""
    g = component_glob(c, before_hash) if c else None
    if g is None and run_dir and _TEMPNAME.match(c) and _random_looking(c):
        g = "*"
    if g is None and run_dir and last and _PIDISH.search(c):
        g = "*".join(_glob_escape(x) for x in _PIDISH.split(c))
    return g if g is not None else _glob_escape(c)


def _digit_shape(path: str) -> str:
    """The shape with every run of digits in the last component globbed (rotation numbers, pids)."""
    head, _, last = shape(path).rpartition("/")
    return head + "/" + _DIGITS.sub("*", last)


def literal_base(pattern: str) -> str:
    """The longest leading run of literal components: the narrowest directory that exists for every match."""
    if pattern[:1] == "/" and "\\" not in pattern:   # nothing escaped: cut before the first glob's component
        i = pattern.find("*")
        if i < 0:
            return pattern
        j = pattern.rfind("/", 0, i)
        return pattern[:j] if j > 0 else "/"
    parts = []
    for c in pattern.split("/")[1:]:
        if "*" in c.replace("\\*", ""):
            break
        parts.append(c.replace("\\", ""))
    return "/" + "/".join(parts)


def _runs_of(paths: Iterable[str], files: Mapping) -> int:
    return max((files[p].get("runs", 1) for p in paths), default=0)


def _directories(paths: Iterable[str]) -> set[str]:
    """Every directory (os.path.dirname, repeated) of these paths, but "/" and ""."""
    out: set[str] = set()
    for p in paths:
        d = os.path.dirname(p)
        while d and d != "/" and d not in out:
            out.add(d)
            d = os.path.dirname(d)
    return out


def _starting_with(paths: list[str], prefix: str) -> list[str]:
    """The sorted ``paths`` that start with ``prefix`` (adjacent in sorted order)."""
    i = j = bisect_left(paths, prefix)
    while j < len(paths) and paths[j].startswith(prefix):
        j += 1
    return paths[i:j]


def file_rules(facts: Mapping) -> tuple[FileRules, tuple[PathPattern, ...], tuple[PathPattern, ...]]:
    """(literal files by access, patterns, owned directories) from the file facts."""
    files: Mapping[str, Mapping] = facts.get("files", {})
    paths = sorted(files)
    odd: set[str] | None = None

    def has_beneath(p: str) -> bool:
        """Is ``p`` a directory of another path (in _directories(paths))? For a name that does not end in
        "/" that is "some path starts with p/", one bisection of the sorted paths; the odd names ("",
        "...//") ask the full set."""
        nonlocal odd
        if p and p[-1] != "/":
            i = bisect_left(paths, p + "/")
            return i < len(paths) and paths[i].startswith(p + "/")
        if odd is None:
            odd = _directories(paths)
        return p in odd

    # owned: directories the workload created (something beneath them), outside the never-list
    created_dirs = [p for p in paths if "create" in files[p]["access"] and has_beneath(p)
                    and not never_generalized(p) and p not in ("/", "/tmp", "/var/tmp")]
    created_set = set(created_dirs)
    owned_by_shape: dict[str, list[str]] = {}
    for p in created_dirs:
        # inside another owned directory: some p[:i] followed by "/" is one
        if any(c == "/" and p[:i] in created_set for i, c in enumerate(p)):
            continue
        owned_by_shape.setdefault(shape(p), []).append(p)
    owned: list[PathPattern] = []
    for pat, roots in sorted(owned_by_shape.items()):
        beneath = {q for r in roots for q in _starting_with(paths, r) if q == r or q.startswith(r + "/")}
        acc = sorted({a for q in beneath for a in files[q]["access"]} | {"create"})
        owned.append(PathPattern(pattern=pat, base=literal_base(pat), access=tuple(acc),
                                 paths=tuple(roots[:EXAMPLES]), count=len(beneath),
                                 runs=sum(files[r].get("runs", 1) for r in roots),
                                 why="created by the workload" + ("" if pat == _glob_escape(roots[0]) else
                                                                  f"; its name varies ({', '.join(roots[:3])})")))
    # each owned pattern is tried on the paths that start with its literal prefix (one run of the sorted paths)
    covered_by_owned = {q for o in owned for q in _starting_with(paths, literal_prefix(o.pattern))
                        if matches(o.pattern, q) or matches(o.pattern + "/**", q)}

    # patterns: generated components, and digit-only differences within one shape
    # (a never-generalized path is its own shape: it joins no group and stays literal)
    rest = [p for p in paths if p not in covered_by_owned and not never_generalized(p)]
    groups: dict[str, list[str]] = {}
    for p in rest:
        s = shape(p)
        if s != _glob_escape(p):
            groups.setdefault(s, []).append(p)
    for s, ps in list(groups.items()):
        # what is executed stays literal unless two paths of one shape were (a single program in a
        # pid-named directory is more likely the test harness's than a generated name)
        if len(ps) == 1 and "exec" in files[ps[0]]["access"]:
            del groups[s]
    in_groups = {q for ps in groups.values() for q in ps}
    literal = [p for p in rest if p not in in_groups]
    by_digits: dict[str, list[str]] = {}
    for p in literal:
        if _DIGITS.search(os.path.basename(p)):
            by_digits.setdefault(_digit_shape(p), []).append(p)
    for s, ps in by_digits.items():
        if len(ps) >= 2:
            groups.setdefault(s, []).extend(ps)
    patterns: list[PathPattern] = []
    for pat, ps in sorted(groups.items()):
        acc = sorted({a for q in ps for a in files[q]["access"]})
        why = "generated names (temporary, pid, hash, uuid or timestamp)" if len(ps) == 1 else \
            f"{len(ps)} paths of one shape"
        patterns.append(PathPattern(pattern=pat, base=literal_base(pat), access=tuple(acc),
                                    paths=tuple(sorted(ps)[:EXAMPLES]), count=len(ps), runs=_runs_of(ps, files), why=why))
    in_patterns = {q for ps in groups.values() for q in ps}
    out: dict[str, list[str]] = {a: [] for a in ACCESSES}
    for p in paths:
        if p in covered_by_owned or p in in_patterns:
            continue
        for a in files[p]["access"]:
            out.setdefault(a, []).append(p)
    return FileRules(**{a: tuple(out[a]) for a in ACCESSES}), tuple(patterns), tuple(owned)


def covered(rules: Rules, path: str, access: str | Iterable[str] = ()) -> str | None:
    """The rule that already allows ``path`` with ``access`` (a literal path, a pattern, an owned
    directory), as words; None when nothing does."""
    wanted = {access} if isinstance(access, str) else set(access)
    for o in rules.owned:
        if matches(o.pattern, path) or matches(o.pattern + "/**", path):
            return f"beneath owned directory {o.pattern}"
    for p in rules.patterns:
        if matches(p.pattern, path) and wanted <= set(p.access):
            return f"matches pattern {p.pattern}"
    if all(path in rules.files.of(a) for a in wanted) and wanted:
        return "listed"
    return None
