"""Object summaries cached by build-id: ``$XDG_CACHE_HOME/leastpriv/reach/`` (default ``~/.cache``).

The directory is created mode 0700, each file is written atomically with mode 0600. A cached file
that does not parse, has another summary version or another build-id is ignored and rewritten.
``LEASTPRIV_REACH_CACHE`` names another directory (tests share one per session); ``off`` disables it.
"""
from __future__ import annotations

import os
import re
import stat

import orjson

from ..fileio import write_atomic
from . import elf as elfmod
from .summary import SUMMARY_VERSION, summarize

_SAFE = re.compile(r"^[0-9a-zA-Z-]{8,80}$")
_memo: dict[str, dict] = {}


def cache_dir() -> str | None:
    env = os.environ.get("LEASTPRIV_REACH_CACHE")
    if env == "off":
        return None
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "leastpriv", "reach")


def _path(key: str) -> str | None:
    d = cache_dir()
    if d is None or not _SAFE.match(key):
        return None
    return os.path.join(d, f"{key}.v{SUMMARY_VERSION}.json")


def _load_own(path: str):
    """The JSON in ``path`` if it is a regular file of ours (not a symlink, owned by us), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            d = orjson.loads(fh.read())
    except (OSError, ValueError, orjson.JSONDecodeError):
        return None
    finally:
        os.close(fd)
    return d


def _read(path: str, key: str) -> dict | None:
    d = _load_own(path)
    if not isinstance(d, dict) or d.get("version") != SUMMARY_VERSION or d.get("build_id") != key \
            or not isinstance(d.get("funcs"), list):
        return None
    return d


def _write(path: str, d: dict) -> None:
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return
        write_atomic(path, orjson.dumps(d), mode=0o600)
    except Exception:   # noqa: BLE001 - a cache that cannot be written is only slower
        pass


def _summarize(path: str, raw: bytes) -> dict:
    import capstone
    try:
        return summarize(elfmod.load(path, raw))
    except (capstone.CsError,) + elfmod.MALFORMED as exc:
        raise elfmod.NotAnalysable(f"{path}: malformed code: {type(exc).__name__}: {exc}"[:300]) from None


def summary_of(path: str) -> tuple[dict, bool]:
    """The summary of the ELF file at ``path`` and whether it came from the cache.
    Raises elf.NotAnalysable with a one-line reason."""
    key, raw = elfmod.file_key(path)
    if key in _memo:
        return _memo[key], True
    cpath = _path(key)
    d = _read(cpath, key) if cpath else None
    cached = d is not None
    if d is None:
        d = _summarize(path, raw)
        if cpath:
            _write(cpath, d)
    d = dict(d, path=path)
    _memo[key] = d
    return d, cached


def summary_of_bytes(name: str, raw: bytes) -> dict:
    """The summary of an in-memory object (the vDSO)."""
    key = elfmod._build_id(raw) or name
    if key in _memo:
        return _memo[key]
    d = _summarize(name, raw)
    _memo[key] = d
    return d


# ---- whole-program results: valid while every object keeps its build-id and every DT_NEEDED name still
# ---- resolves to the same file (a new library earlier in the search path is noticed)

def quick_build_id(path: str) -> str:
    """The build-id from the first 64 KiB of the file (where PT_NOTE lives), else the full key."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        head = os.pread(fd, 65536, 0)
    finally:
        os.close(fd)
    bid = elfmod._build_id(head)
    if bid:
        return bid
    try:
        return elfmod.file_key(path)[0]
    except elfmod.NotAnalysable:
        return ""


def _program_path(inputs: dict) -> str | None:
    import hashlib
    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]
    return os.path.join(d, f"prog-{h}.v{SUMMARY_VERSION}.json")


def program_get(inputs: dict) -> dict | None:
    p = _program_path(inputs)
    if p is None:
        return None
    d = _load_own(p)
    if not isinstance(d, dict) or d.get("inputs") != orjson.loads(orjson.dumps(inputs)):
        return None
    return d


def program_put(inputs: dict, result: dict) -> None:
    p = _program_path(inputs)
    if p is not None:
        _write(p, {"inputs": inputs, **result})
