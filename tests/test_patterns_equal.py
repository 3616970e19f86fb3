"""learner/patterns.file_rules finds owned directories and the paths they cover by bisection of the sorted
paths; it must give exactly what the plain scans it replaced gave (kept here as the reference: every path
against every created directory and every owned pattern), on real path sets and on odd names."""
from __future__ import annotations

import os
import random

import pytest

from leastpriv.learner import patterns as P
from leastpriv.policy.rules import ACCESSES, FileRules, PathPattern


def reference_file_rules(facts):
    """file_rules as it was before the bisections (quadratic scans), unchanged but for names."""
    files = facts.get("files", {})
    paths = sorted(files)
    children: set[str] = set()
    for p in paths:
        d = os.path.dirname(p)
        while d and d != "/" and d not in children:
            children.add(d)
            d = os.path.dirname(d)
    created_dirs = [p for p in paths if "create" in files[p]["access"] and p in children
                    and not P.never_generalized(p) and p not in ("/", "/tmp", "/var/tmp")]
    owned_by_shape: dict[str, list[str]] = {}
    for p in created_dirs:
        if any(p.startswith(q + "/") for q in created_dirs if q != p):
            continue
        owned_by_shape.setdefault(P.shape(p), []).append(p)
    owned = []
    for pat, roots in sorted(owned_by_shape.items()):
        beneath = [q for q in paths if any(q == r or q.startswith(r + "/") for r in roots)]
        acc = sorted({a for q in beneath for a in files[q]["access"]} | {"create"})
        owned.append(PathPattern(pattern=pat, base=P.literal_base(pat), access=tuple(acc),
                                 paths=tuple(roots[:P.EXAMPLES]), count=len(beneath),
                                 runs=sum(files[r].get("runs", 1) for r in roots),
                                 why="created by the workload" + ("" if pat == P._glob_escape(roots[0]) else
                                                                  f"; its name varies ({', '.join(roots[:3])})")))
    covered_by_owned = {q for q in paths for o in owned if P.matches(o.pattern, q) or P.matches(o.pattern + "/**", q)}
    rest = [p for p in paths if p not in covered_by_owned]
    groups: dict[str, list[str]] = {}
    for p in rest:
        s = P.shape(p)
        if s != P._glob_escape(p):
            groups.setdefault(s, []).append(p)
    for s, ps in list(groups.items()):
        if len(ps) == 1 and "exec" in files[ps[0]]["access"]:
            del groups[s]
    in_groups = {q for ps in groups.values() for q in ps}
    literal = [p for p in rest if p not in in_groups and not P.never_generalized(p)]
    by_digits: dict[str, list[str]] = {}
    for p in literal:
        if P._DIGITS.search(os.path.basename(p)):
            by_digits.setdefault(P._digit_shape(p), []).append(p)
    for s, ps in by_digits.items():
        if len(ps) >= 2:
            groups.setdefault(s, []).extend(ps)
    pats = []
    for pat, ps in sorted(groups.items()):
        acc = sorted({a for q in ps for a in files[q]["access"]})
        why = "generated names (temporary, pid, hash, uuid or timestamp)" if len(ps) == 1 else \
            f"{len(ps)} paths of one shape"
        pats.append(PathPattern(pattern=pat, base=P.literal_base(pat), access=tuple(acc),
                                paths=tuple(sorted(ps)[:P.EXAMPLES]), count=len(ps), runs=P._runs_of(ps, files),
                                why=why))
    in_patterns = {q for ps in groups.values() for q in ps}
    out: dict[str, list[str]] = {a: [] for a in ACCESSES}
    for p in paths:
        if p in covered_by_owned or p in in_patterns:
            continue
        for a in files[p]["access"]:
            out.setdefault(a, []).append(p)
    return FileRules(**{a: tuple(out[a]) for a in ACCESSES}), tuple(pats), tuple(owned)


def _facts(entries):
    return {"files": {p: {"access": sorted(acc), "runs": runs} for p, acc, runs in entries}}


def test_equal_on_a_real_tree_with_created_directories():
    """/usr/include read (never generalized), a build tree created under /tmp with nested created
    directories, pid and digit names, and a second created root of the same shape."""
    entries = []
    for root, dirs, names in os.walk("/usr/include"):
        entries += [(os.path.join(root, n), {"read"}, 1) for n in names[:20]]
        if len(entries) > 1500:
            break
    for t in ("/tmp/tmp.Ab3dE9xQ", "/tmp/tmp.Zq81mmP0", "/tmp/build"):
        entries.append((t, {"create", "write"}, 1))
        for d in ("obj", "obj/sub", "obj/sub/deeper", "log"):
            entries.append((f"{t}/{d}", {"create"}, 2))
            entries += [(f"{t}/{d}/f{i}.o", {"create", "write"}, 1) for i in range(30)]
    entries += [(f"/run/app/worker-{i}.pid", {"write"}, 1) for i in (1, 22, 333, 4444)]
    entries += [(f"/var/cache/app/out.log.{i}", {"read", "write"}, i) for i in range(1, 6)]
    entries += [("/var/cache/app/tool1", {"exec"}, 1), ("/tmp/1234/tool", {"exec", "read"}, 1)]
    facts = _facts(entries)
    got = P.file_rules(facts)
    assert got == reference_file_rules(facts)
    assert got[2], "the case must have owned directories"
    assert got[1], "and patterns"


ODD = ["", "/", "//", "/a", "/a/", "/a//", "/a//b", "/a/b/", "/a/b//c", "/a/b/c", "/a/b-c", "/a/b.c", "/a/b0",
       "a", "a/b", "a/b/c", "/t\\x", "/t\\x/y", "/t*", "/t*/u", "/t[1]", "/t[1]/v", "/tmp/x", "/tmp/x/",
       "/tmp/x//y", "/tmp/x/y/z", "/tmp/x-1", "/tmp/x.1/2", "/srv/o", "/srv/o/p", "/srv/o/p/q", "/srv/o2/p",
       "/srv/tmp.Q1w2E3r4/a", "/srv/tmp.Q1w2E3r4", "/srv/tmp.Zz9Yy8Xx", "/srv/tmp.Zz9Yy8Xx/b", "/x/\\*/y",
       "/x/\\*", "/x/**", "/x/**/z", "/home/u/.cache", "/home/u/.cache/a"]


@pytest.mark.parametrize("seed", range(40))
def test_equal_on_odd_names(seed):
    """Empty names, "/", doubled and trailing slashes, relative paths, glob characters and backslashes,
    created or not, in random subsets."""
    rnd = random.Random(seed)
    entries = []
    for p in rnd.sample(ODD, rnd.randint(5, len(ODD))):
        acc = {a for a in ACCESSES if rnd.random() < 0.4} or {"read"}
        if rnd.random() < 0.5:
            acc.add("create")
        entries.append((p, acc, rnd.randint(1, 3)))
    facts = _facts(entries)
    assert P.file_rules(facts) == reference_file_rules(facts)


def test_literal_prefix_is_what_every_match_starts_with():
    for pat, path in [("/a/b*", "/a/bcd"), ("/t\\*x/*", "/t*x/q"), ("/x/**", "/x/y/z"), ("/l\\", "/l\\"),
                      ("/e\\[1\\]/*", "/e[1]/z")]:
        assert P.matches(pat, path)
        assert path.startswith(P.literal_prefix(pat))
    assert P.literal_prefix("/a/b*/c") == "/a/b"
    assert P.literal_prefix("/t\\*x/*") == "/t*x/"


def _shape_cases():
    out = list(ODD)
    for root, dirs, names in os.walk("/usr/lib/python3"):
        out += [os.path.join(root, n) for n in names[:5]]
        if len(out) > 2000:
            break
    h = "0123456789abcdef0123456789abcdef01234567"
    out += [f"/tmp/r/.git/objects/{h[:2]}/{h[2:]}", f"/srv/r/.git/objects/{h[:2]}/{h[2:]}", f"/srv/ab/{h}/x",
            f"/srv/{h[:2]}/{h[2:]}", f"{h[:2]}/{h}", "/run/user/0/tmp.Ab3dE9xQ/f1", "/tmp/tmpk3j_x9a2/a/b.1234.pid",
            "/var/tmp/app-20261130T101010/log", "/tmp/9f1c2b7e-1111-2222-3333-444455556666/x",
            "/tmp/" + "/".join(["d"] * 200) + "/tmp.Ab3dE9xQ", "/srv/" + "/".join(["ab"] * 150) + "/" + h]
    return out


def test_shape_by_directory_is_the_walk_of_every_component():
    """shape() builds a path's shape from its directory's (made once per directory); the plain walk over
    every component gives the same text for every path, deep ones and git's fan-out directories too."""
    for p in _shape_cases():
        assert P.shape(p) == (P._glob_escape(p) if P.never_generalized(p) else
                              P._walk_shape(p, p.startswith(P._RUN_UNDER))), p


def _literal_base_by_components(pattern: str) -> str:
    parts = []
    for c in pattern.split("/")[1:]:
        if "*" in c.replace("\\*", ""):
            break
        parts.append(c.replace("\\", ""))
    return "/" + "/".join(parts)


def test_literal_base_is_the_run_of_literal_components():
    cases = ["/", "//", "/a", "/a/", "/a//b", "/a/*", "/*", "//*", "///x*", "/a/b*/c", "/a/b/c*d/e", "/a/**",
             "a/b*", "ab/cd", "", "*", "/t\\*x/*", "/e\\[1\\]/*", "/x\\", "/tmp/tmp.*/f"]
    cases += [P.shape(p) for p in _shape_cases()]
    for pat in cases:
        assert P.literal_base(pat) == _literal_base_by_components(pat), pat
