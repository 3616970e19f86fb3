"""fileio.dumps writes exactly json.dumps(indent=2, sort_keys=True) + newline, fast or not."""
from __future__ import annotations

import json
import os
import time

import pytest

from leastpriv import fileio
from tests.conftest import lp


def _ref(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


EDGE = [
    {}, [], "", 0, None, True, 1.5, {"a": {}, "b": [], "c": [{}], "d": [[]]},
    {"z": 1, "a": 2, "M": 3, "_": 4, "a b": 5, "10": 6, "9": 7},
    # strings json escapes: non-ASCII, DEL, every control character, quotes, backslash, slash
    {"path": "/tmp/caf\u00e9/\u65e5\u672c/\U0001f600", "del": "a\x7fb", "ctl": "".join(map(chr, range(32))),
     "q": "say \"hi\" \\ back/slash", "sep": "x: 1e-6,", "hex": "3e5 1e16"},
    {"bad": "surrogate \udcff from a non-UTF-8 file name"},
    # floats: plain, shortest-repr, exponent forms that orjson writes differently
    {"t": 1763838000.1234567, "f": [0.1, 2.5, -0.0, 1e15, 123456.789, 1e-4]},
    {"e": [1e16, 1.5e300, 4e-06, 5e-324, -2.7e-07], "x": 1e-05},
    {"x": 1e-05}, [9.9e-05, -1.5e-05], {"t": 1764470000.00001},   # orjson: 0.00001 (no exponent), json: 1e-05
    # ints: 64-bit edges and beyond (orjson refuses > 64 bits)
    {"i": [2**63 - 1, -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30]},
    # keys json converts: int, bool, None, float
    {1: "a", 2: "b", 10: "c"}, {True: 1, False: 2}, {"v": (1, 2, (3,))},
]


@pytest.mark.parametrize("obj", EDGE, ids=range(len(EDGE)))
def test_dumps_identical_to_json_dumps(obj):
    assert fileio.dumps(obj) == _ref(obj)


def test_dumps_refuses_what_json_refuses():
    for bad in ({"s": {1, 2}}, {"o": object()}, {(1, 2): 3}):
        with pytest.raises(TypeError):
            fileio.dumps(bad)
        with pytest.raises(TypeError):
            _ref(bad)


def test_real_profile_identical_and_fast(tmp_path):
    """A profile of ~1,000 files learned from a real run: the same bytes, written fast."""
    prof = tmp_path / "p.json"
    r = lp("learn", "--backend", "ptrace", "-o", str(prof), "--", "tar", "-cf", str(tmp_path / "o.tar"),
           "-C", "/usr/include/linux", ".")
    assert r.returncode == 0, r.stderr
    text = prof.read_text()
    d = json.loads(text)
    assert len(d["facts"]["files"]) > 500
    assert text == _ref(d) == fileio.dumps(d)
    big = {**d, "facts": {**d["facts"], "files": {f"/f/{i}/{p}": e for i in range(8) for p, e in d["facts"]["files"].items()}}}
    t = time.perf_counter()
    out = fileio.dumps(big)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    assert out == _ref(big)
    slow = time.perf_counter() - t
    if fileio._orjson is not None:
        assert fast < slow / 3, (fast, slow)


def test_write_atomic_never_replaces_a_device_or_directory(tmp_path):
    from leastpriv.errors import UserError
    from leastpriv.fileio import write_atomic

    for target in ("/dev/null", str(tmp_path)):
        with pytest.raises(UserError, match="not a regular file"):
            write_atomic(target, "x")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        write_atomic(blocker / "x.json", "{}")


def test_small_documents_are_written_without_orjson_large_ones_with_it(tmp_path):
    """A small profile (learn -- true) is written by fileio._indented (orjson's import costs more than it
    saves), a large one by orjson; both give json.dumps' text."""
    import subprocess
    import sys
    code = ("import json, sys\nfrom leastpriv import fileio\n"
            "small = {'facts': {'files': {f'/f{i}': {'access': ['read'], 'runs': 1} for i in range(50)}}}\n"
            "assert fileio.dumps(small) == json.dumps(small, indent=2, sort_keys=True) + '\\n'\n"
            "print('orjson' in sys.modules)\n"
            "large = {'facts': {'files': {f'/f{i}': {'access': ['read'], 'runs': 1} for i in range(8000)}}}\n"
            "assert fileio.dumps(large) == json.dumps(large, indent=2, sort_keys=True) + '\\n'\n"
            "print('orjson' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
    for obj in (0, "x", None, [1, [2, [3, [4]]]], {"a": {"b": {"c": {"d": 1}}}}):
        assert fileio._entries(obj) >= 0 and fileio.dumps(obj) == _ref(obj)


class _S(str):
    pass


class _I(int):
    pass


def _random_json(rnd, depth: int = 0):
    """Data of every shape dumps meets and some it should leave to json.dumps (subclasses, tuples, odd keys)."""
    pick = rnd.randrange(16 if depth < 6 else 9)
    atoms = ["", "a", "caf\u00e9", "\x00\x1f\x7f\"\\/", "\udcff", "/usr/lib/x.so", _S("sub")]
    if pick < 3:
        return rnd.choice(atoms)
    if pick < 5:
        return rnd.choice([0, -1, 2**63, 10**20, True, False, _I(7)])
    if pick < 7:
        return rnd.choice([0.0, -0.0, 1.5, 1e-05, 1e16, 5e-324, float("inf"), float("-inf"), float("nan")])
    if pick < 9:
        return None
    if pick < 11:
        return [rnd.choice(atoms[:-1]) for _ in range(rnd.randrange(4))]   # the all-strings fast path
    n = rnd.randrange(5)
    if pick < 13:
        items = [_random_json(rnd, depth + 1) for _ in range(n)]
        return tuple(items) if rnd.random() < 0.2 else items
    keys = [rnd.choice(["k", "a", "Z", "_", "10", "9", "caf\u00e9", "\x01"]) + str(i) for i in range(n)]
    if rnd.random() < 0.05:
        keys.append(rnd.choice([1, 2.5, None, True, _S("s")]))
    return {k: _random_json(rnd, depth + 1) for k in keys}


def test_indented_is_json_dumps_on_random_data(monkeypatch):
    """fileio._indented, the writer of small documents, against json.dumps on 3,000 random documents (and on
    nesting deeper than its table of indents)."""
    import random
    monkeypatch.setattr(fileio, "_orjson", None)   # as in a fresh process (another test may have loaded it)
    rnd = random.Random(13)
    def outcome(f, obj):
        try:
            return f(obj)
        except (TypeError, ValueError) as exc:   # json refuses mixed keys it cannot sort: so must dumps
            return type(exc)

    refused = 0
    for _ in range(3000):
        obj = _random_json(rnd)
        want = outcome(_ref, obj)
        refused += not isinstance(want, str)
        assert outcome(fileio.dumps, obj) == want, obj
    assert 0 < refused < 300
    deep: list = []
    for i in range(100):
        deep = [deep] if i % 2 else {"x": deep, "y": ["a"]}
    assert fileio.dumps(deep) == _ref(deep)
    circular: dict = {}
    circular["me"] = circular
    with pytest.raises(ValueError, match="[Cc]ircular"):
        fileio.dumps(circular)
