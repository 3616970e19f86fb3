"""Atomic file writes and careful JSON reads, shared by every part."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring_ascii as _esc

from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any


FILE_MODE = 0o644    # every file leastpriv writes (profiles, recordings, exports, reports)
CACHE_MODE = 0o600   # caches (kernel addresses are secrets under KASLR)


def write_atomic(path: str | os.PathLike, data: str | bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    The rules for every file leastpriv writes (it runs as root, often in directories others can write):

    * the path the user named is written, never a symlink's target: a symlink there is refused
      (name the target itself), so a dangling link cannot create ``/etc/x`` and a link to a device
      or a setuid file cannot have it replaced or copy its mode;
    * only a regular file is ever replaced (never a device, fifo or directory);
    * the new content goes to a temporary file created ``O_EXCL`` in the same directory, gets
      ``mode`` (0644; caches 0600) whatever the old file had, is fsync'ed, then renamed over ``path``.
    """
    path = os.fspath(path)
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data   # non-UTF-8 names: their bytes
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:   # e.g. a path component that is a file (ENOTDIR)
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path}: is a symlink: leastpriv never writes through one (name the file it points to)")
    if st is not None and not stat.S_ISREG(st.st_mode):
        # never rename over a device, pipe or directory (-o /dev/null as root would replace the device)
        raise UserError(f"{path}: not a regular file: refusing to replace it")
    try:
        fd, tmp = make_temp(os.path.dirname(path), f".{os.path.basename(path)}.", ".tmp")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise DiskFull(str(path), exc.strerror) from None
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            raise DiskFull(str(path), exc.strerror) from None
        raise


def make_temp(directory: str, prefix: str, suffix: str = "") -> tuple[int, str]:
    """(fd, name) of a new, empty file in ``directory`` ("" = here): ``tempfile.mkstemp``'s guarantees (mode
    0600, created ``O_EXCL | O_NOFOLLOW``: never an existing file, never through a symlink, an unpredictable
    name) without importing tempfile, which brings shutil, random and the compression modules (~3 ms of
    every start)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory or ".")


class DiskFull(UserError):
    """Writing failed for lack of space (or a dead or read-only disk); nothing was replaced."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: cannot write: {why} (the old file, if any, is unchanged)")
        self.path = path


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of ``path`` (learn and merge into one profile).

    The lock is ``fcntl.flock`` on a sidecar file, ``.NAME.lock`` next to ``path`` (the profile itself
    is replaced by a rename, so it cannot carry the lock). The holder removes the sidecar before it
    unlocks; a waiter that then gets the lock of a removed file sees that the name no longer leads to
    its file and starts again, so no two writers ever hold "the" lock at once and nothing is left
    behind. Never opened through a symlink.
    """
    path = os.fspath(path)
    lock = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, 0o600)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise DiskFull(str(path), exc.strerror) from None
            raise UserError(f"{lock}: cannot lock {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"{lock}: not a regular file: cannot lock {path}")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = os.lstat(lock)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            break
        os.close(fd)       # the holder before us removed it: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)       # releases the lock


# orjson, imported for the first large document (dumps): its import brings datetime, uuid, platform and (now
# that the learn path does without them) dataclasses, inspect and typing: ~12 ms on the 2-vCPU machine this was
# measured on, where _indented writes ~2.5 µs an entry (first-three-level entries, _entries)
_orjson = None
_ORJSON_OPTS = 0
_orjson_tried = False
# a document with fewer entries than this is written by _indented: the profile of a pytest run (~950 entries)
# in ~2.4 ms, of git status in a copy of /usr/include (~2,050) in ~5 ms, against ~12 and ~13 ms with orjson's
# import; tar of /usr/include (~17,600) takes orjson, ~23 ms against ~47 (medians of 7, CPU time, a fresh process)
SMALL_DOCUMENT = 6000


def _load_orjson():
    """orjson, imported now (None if it is not installed: the stdlib path gives the same bytes)."""
    global _orjson, _ORJSON_OPTS, _orjson_tried
    if not _orjson_tried:
        _orjson_tried = True
        try:
            import orjson
        except ImportError:  # pragma: no cover - orjson is a dependency
            return None
        _ORJSON_OPTS = (orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
                        | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
                        | orjson.OPT_PASSTHROUGH_SUBCLASS)
        _orjson = orjson
    return _orjson


def _entries(obj: Any, depth: int = 3) -> int:
    """The dict items and list entries of ``obj`` in its first ``depth`` levels: a cheap measure of its size."""
    if type(obj) not in (dict, list):
        return 0
    n, level = 0, [obj]
    for d in range(depth):
        deeper: list = []
        for x in level:
            n += len(x)
            if d + 1 < depth:
                deeper += [v for v in (x.values() if type(x) is dict else x) if type(v) in (dict, list)]
        level = deeper
    return n

# Where orjson's text could differ from json.dumps: a byte json would escape (non-ASCII, DEL) or a
# float in exponent notation (json: 1e-06 / 1e+16, orjson: 1e-6 / 1e16). A number token is the only
# place where an exponent's digits can be followed by "," or a newline (a string ends with a quote).
_EXPONENT = re.compile(rb"e[-+]?[0-9]+,?\n")
# A float of 1e-05 up to 1e-04 is the other way round: orjson writes 0.00001 where json writes 1e-05.
_SMALL_FLOAT = re.compile(rb"0\.0000[0-9]*,?\n")


def dumps(obj: Any) -> str:
    """The project's one JSON style: sorted keys, two-space indent, final newline.

    The text is exactly ``json.dumps(obj, indent=2, sort_keys=True) + "\\n"`` (tests/test_fileio.py
    proves it). Python's json encoder is pure Python when it indents, and slow at it (a generator per
    level; ~3 ms for the profile of a pytest run, ~0.13 s for one of 9,000 files). A small document is
    written by _indented (the same text, ~2.3x faster: see there); a large one by orjson (Rust, ~5 ms
    for 9,000 files) whenever its output is provably the same: str keys only, ints within 64 bits, no
    surrogates, no dataclass/subclass objects (orjson refuses those here), and none of the bytes or
    float forms above. Anything either of them cannot vouch for takes json.dumps. One difference remains
    by design: orjson writes NaN/Infinity floats (invalid JSON that json.dumps writes) as null; leastpriv's
    data has none.
    """
    if _orjson is None and _entries(obj) < SMALL_DOCUMENT:
        try:
            return _indented(obj, 0) + "\n"
        except (_NotPlain, RecursionError, IndexError):   # IndexError: nested deeper than _NL reaches
            return json.dumps(obj, indent=2, sort_keys=True) + "\n"
    fast = _load_orjson()
    if fast is not None:
        try:
            raw = fast.dumps(obj, option=_ORJSON_OPTS)
        except TypeError:   # orjson.JSONEncodeError: a type or value only json.dumps writes
            pass
        else:
            if (raw.isascii() and b"\x7f" not in raw and _EXPONENT.search(raw) is None
                    and _SMALL_FLOAT.search(raw) is None):
                return raw.decode("ascii")
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


class _NotPlain(Exception):
    """What _indented leaves to json.dumps: a value of another type than dict, list, tuple, str, int, float,
    bool or None (subclasses included: json.dumps decides how they look), or a key that is not a str."""


_NL = tuple("\n" + "  " * i for i in range(48))   # a new line at each depth
_SEP = tuple("," + nl for nl in _NL)                # between two items at each depth
_KEYS: dict[str, str] = {}                         # '"key": ' of each key seen (profiles repeat few keys)
_INFINITY = float("inf")


def _key(k: Any) -> str:
    if type(k) is not str:
        raise _NotPlain
    s = _KEYS[k] = _esc(k) + ": "
    return s


def _float(o: float) -> str:
    """json.encoder's floatstr (allow_nan)."""
    if o != o:
        return "NaN"
    if o == _INFINITY:
        return "Infinity"
    if o == -_INFINITY:
        return "-Infinity"
    return float.__repr__(o)


def _indented(o: Any, level: int) -> str:
    """``json.dumps(o, indent=2, sort_keys=True)`` for plain JSON data, or _NotPlain.

    The same text as json.encoder's _make_iterencode (ensure_ascii, separators "," and ": ", keys sorted,
    empty containers as {} and [], floats by float.__repr__), written by joining each container's items
    instead of yielding them through a generator per level; a list of strings (the files of a rule, the
    syscalls of an executable) is joined by str.join over json's C string encoder in one call.
    """
    t = type(o)
    if t is dict:
        if not o:
            return "{}"
        inner = level + 1
        try:
            keys = sorted(o)
        except TypeError:   # keys json.dumps sorts otherwise, or refuses
            raise _NotPlain from None
        parts = []
        add = parts.append
        keyed = _KEYS.get
        for k in keys:
            v = o[k]
            tv = type(v)
            kk = keyed(k) or _key(k)
            if tv is str:
                add(kk + _esc(v))
            elif tv is int:
                add(kk + int.__repr__(v))
            elif tv is list and v:
                try:
                    add(kk + "[" + _NL[inner + 1] + _SEP[inner + 1].join(map(_esc, v)) + _NL[inner] + "]")
                except TypeError:   # not only strings
                    add(kk + _indented(v, inner))
            else:
                add(kk + _indented(v, inner))
        return "{" + _NL[inner] + _SEP[inner].join(parts) + _NL[level] + "}"
    if t is list or t is tuple:
        if not o:
            return "[]"
        inner = level + 1
        try:
            return "[" + _NL[inner] + _SEP[inner].join(map(_esc, o)) + _NL[level] + "]"
        except TypeError:   # not only strings
            pass
        return "[" + _NL[inner] + _SEP[inner].join([_indented(v, inner) for v in o]) + _NL[level] + "]"
    if t is str:
        return _esc(o)
    if t is int:
        return int.__repr__(o)
    if t is bool:
        return "true" if o else "false"
    if o is None:
        return "null"
    if t is float:
        return _float(o)
    raise _NotPlain


def copy_json(x: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, str/int/float/bool/None), ~10x faster than
    copy.deepcopy (no memo; a part shared twice is copied twice, which JSON cannot tell apart).
    Anything else (tuples, sets, objects) is handed to copy.deepcopy."""
    t = type(x)
    if t is dict:
        return {k: (v if type(v) in _ATOMS else copy_json(v)) for k, v in x.items()}
    if t is list:
        return [v if type(v) in _ATOMS else copy_json(v) for v in x]
    if t in _ATOMS:
        return x
    import copy   # here: the fallback is rare, and copy (with weakref) costs every start ~0.5 ms

    return copy.deepcopy(x)


_ATOMS = frozenset({str, int, float, bool, type(None)})


def keep_json(x: Any) -> Any:
    """copy_json's counterpart where the data is held by no one else (a fresh run's facts, a profile being
    written): the same object, not a copy."""
    return x


MAX_INPUT_BYTES = 64 << 20   # a profile, recording or bundle config larger than this is refused unread


def read_bounded(path: str | os.PathLike, what: str = "file", limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is refused before reading.

    Opened non-blocking (a fifo does not hang the open), then checked on the descriptor: a fifo, a
    device (a link to /dev/zero), a directory or a file over the limit is refused in one line.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{path}: is a directory, expected a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path}: not a regular file (a device, fifo or socket): refusing to read it as a {what}")
        if st.st_size > limit:
            raise UserError(f"{path}: {st.st_size} bytes: larger than the {limit >> 20} MiB a {what} may have "
                            "(refused unread)")
        chunks, left = [], limit + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except OSError as exc:
                raise UserError(f"{path}: cannot read: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        if len(raw) > limit:   # grew while we read it
            raise UserError(f"{path}: larger than the {limit >> 20} MiB a {what} may have (refused)")
        return raw
    finally:
        os.close(fd)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read a JSON file (bounded, strict: no NaN/Infinity) or raise a one-line UserError naming it and
    the problem."""
    raw = read_bounded(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a {what} (not UTF-8 text)") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise UserError(f"{path}: malformed JSON: nested too deeply") from None
    except ValueError as exc:   # NaN/Infinity, an integer of more than 4300 digits
        raise UserError(f"{path}: malformed JSON: {str(exc).splitlines()[0][:120]}") from None
